//! One CSV row at a time: plausible values for each column, and the invalid
//! variants `--bad-rate` mixes in. Rows are appended to a caller's buffer, so
//! the loop allocates nothing once the buffer has grown to a row's size.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::text::{push_hex, push_u64, TimestampWriter};
use super::InvalidClass;
use crate::schema::{ColumnType, RecordKind};

/// Subscribers in the pool numbers are drawn from, so that numbers repeat
/// within and across files as they do in real traffic.
const SUBSCRIBERS: usize = 20_000;

/// Mobile number plans: (leading digits, total digits, weight). The digits
/// after the prefix are random, the first of them non-zero.
const NUMBER_PLANS: [(&[u8], usize, u32); 16] = [
    (b"276", 11, 10), // South Africa
    (b"277", 11, 14),
    (b"278", 11, 10),
    (b"23470", 13, 6), // Nigeria
    (b"23480", 13, 8),
    (b"23481", 13, 5),
    (b"23490", 13, 5),
    (b"447", 12, 10), // United Kingdom
    (b"1", 11, 10),   // United States / Canada
    (b"4915", 13, 3), // Germany
    (b"4917", 13, 4),
    (b"4916", 12, 2),
    (b"917", 12, 4), // India
    (b"919", 12, 4),
    (b"2547", 12, 3), // Kenya
    (b"336", 11, 2),  // France
];

const DATA_TYPES: [(&[u8], u32); 4] = [(b"application", 40), (b"text", 25), (b"image", 20), (b"video", 15)];

/// Sites a subscriber might visit; two contain a comma, so they are written
/// quoted.
const URLS: [&str; 24] = [
    "http://example.com",
    "https://www.google.com/search?q=weather+today",
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    "https://www.facebook.com/",
    "https://web.whatsapp.com",
    "https://www.instagram.com/explore/",
    "https://api.twitter.com/2/tweets",
    "https://en.wikipedia.org/wiki/Call_detail_record",
    "http://news.bbc.co.uk/sport",
    "https://www.netflix.com/browse",
    "https://open.spotify.com/playlist/37i9dQZF1DXcBWIGoYBM5M",
    "https://cdn.jsdelivr.net/npm/bootstrap@5.3.0/dist/css/bootstrap.min.css",
    "https://www.amazon.com/dp/B08N5WRWNW?ref=ppx_yo2ov_dt_b_product_details",
    "https://mail.google.com/mail/u/0/#inbox",
    "http://192.168.1.1/admin",
    "https://www.takealot.com/",
    "https://www.news24.com/news24/southafrica",
    "https://www.jumia.com.ng/phones-tablets/",
    "https://www.bing.com/search?q=cdr+format&form=QBLH",
    "https://www.google.com/maps/place/-33.9249,18.4241",
    "https://api.example.net/v1/items?ids=12,34,56",
    "http://speedtest.net",
    "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
    "https://www.tiktok.com/@user/video/7234567890123456789",
];

/// IPv6 prefixes of mobile carriers' allocations (first two groups).
const IPV6_PREFIXES: [[u16; 2]; 4] = [[0x2c0f, 0xf4c0], [0x2a01, 0x4c8], [0x2001, 0x4860], [0x2605, 0x8d80]];

const BAD_MSISDNS: [&[u8]; 4] = [b"123", b"27abc4561234", b"+27821234567", b"2782123456789012"];
const BAD_NUMBERS: [&[u8]; 6] = [b"12k", b"abc", b"-42", b"1.5e3", b"NaN", b"0x1F"];
const BAD_TIMESTAMPS: [&[u8]; 4] = [
    b"2024-13-45 25:61:00",
    b"yesterday",
    b"2024-02-30 12:00:00",
    b"01/01/2024 10:00",
];
const BAD_IPS: [&[u8]; 5] = [b"300.1.2.3", b"10.0.0", b"192.168.1.256", b"2001:db8::g1", b"localhost"];
const BAD_DATA_TYPES: [&[u8]; 4] = [b"audio", b"streaming", b"unknown", b"mms"];
const BAD_CALL_TYPES: [&[u8]; 4] = [b"fax", b"sms", b"conference", b"telex"];
const NON_UTF8_URL: &[u8] = b"http://example.com/caf\xff\xfe";
const NON_UTF8_NUMBER: &[u8] = b"2782\xff\xfe1234567";
const EXTRA_FIELDS: [&[u8]; 3] = [b",", b",extra", b",1,2"];

/// A phone number as ASCII digits.
#[derive(Clone, Copy)]
struct Number {
    digits: [u8; 15],
    len: u8,
}

impl Number {
    fn random(rng: &mut SmallRng) -> Number {
        let (prefix, len, _) = NUMBER_PLANS[pick_weighted(rng, &NUMBER_PLANS, |p| p.2)];
        let mut digits = [b'0'; 15];
        digits[..prefix.len()].copy_from_slice(prefix);
        for (i, d) in digits[prefix.len()..len].iter_mut().enumerate() {
            let low = if i == 0 { 1 } else { 0 };
            *d = b'0' + rng.random_range(low..10u8);
        }
        Number { digits, len: len as u8 }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.digits[..usize::from(self.len)]
    }
}

/// The subscribers of one generation run; depends only on the seed, so every
/// file sees the same people.
pub(super) struct SubscriberPool {
    numbers: Vec<Number>,
}

impl SubscriberPool {
    pub(super) fn new(seed: u64) -> SubscriberPool {
        let mut rng = SmallRng::seed_from_u64(mix(seed, u64::MAX));
        SubscriberPool {
            numbers: (0..SUBSCRIBERS).map(|_| Number::random(&mut rng)).collect(),
        }
    }

    /// A subscriber, the low indices (heavy users) more often than the rest.
    fn pick(&self, rng: &mut SmallRng) -> &Number {
        let u: f64 = rng.random();
        let i = (u * u * self.numbers.len() as f64) as usize;
        &self.numbers[i.min(self.numbers.len() - 1)]
    }
}

/// Derives a well-mixed seed from two values (SplitMix64's finaliser), so that
/// neighbouring files get unrelated random streams.
pub(super) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn pick_weighted<T>(rng: &mut SmallRng, items: &[T], weight: impl Fn(&T) -> u32) -> usize {
    let total: u32 = items.iter().map(&weight).sum();
    let mut r = rng.random_range(0..total);
    for (i, item) in items.iter().enumerate() {
        let w = weight(item);
        if r < w {
            return i;
        }
        r -= w;
    }
    items.len() - 1
}

fn pick<'a>(rng: &mut SmallRng, items: &[&'a [u8]]) -> &'a [u8] {
    items[rng.random_range(0..items.len())]
}

/// Writes `value` as one CSV field, quoted when it holds a separator, quote or
/// line break.
fn push_csv_field(out: &mut Vec<u8>, value: &[u8]) {
    if value.iter().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.push(b'"');
        for &b in value {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(value);
    }
}

/// Writes the rows of one file, each with its own random stream.
pub(super) struct RowWriter<'a> {
    kind: RecordKind,
    rng: SmallRng,
    pool: &'a SubscriberPool,
    clock: TimestampWriter,
    /// `URLS` as CSV fields, quoted where needed.
    urls: Vec<Vec<u8>>,
    /// Start offsets of the fields of the row being written.
    field_starts: Vec<usize>,
    fields: usize,
}

impl<'a> RowWriter<'a> {
    pub(super) fn new(kind: RecordKind, rng: SmallRng, pool: &'a SubscriberPool) -> RowWriter<'a> {
        let urls = URLS
            .iter()
            .map(|u| {
                let mut field = Vec::with_capacity(u.len() + 2);
                push_csv_field(&mut field, u.as_bytes());
                field
            })
            .collect();
        RowWriter {
            kind,
            rng,
            pool,
            clock: TimestampWriter::new(),
            urls,
            field_starts: Vec::new(),
            fields: 0,
        }
    }

    pub(super) fn rng(&mut self) -> &mut SmallRng {
        &mut self.rng
    }

    /// Appends one row (without line ending) whose event time is `micros`,
    /// broken in the way `defect` names, if any.
    pub(super) fn push_row(&mut self, out: &mut Vec<u8>, micros: i64, defect: Option<InvalidClass>) {
        let start = out.len();
        self.fields = 0;
        self.field_starts.clear();
        match self.kind.as_str() {
            "data" => self.push_data(out, micros, defect),
            "voice" => self.push_voice(out, micros, defect),
            _ => self.push_declared(out, micros, defect),
        }
        match defect {
            Some(InvalidClass::TooFewFields) => {
                // Keep at least all but two fields, so the line is never empty.
                let drop = self.rng.random_range(1..=2);
                out.truncate(self.field_starts[self.fields - drop] - 1);
                debug_assert!(out.len() > start);
            }
            Some(InvalidClass::TooManyFields) => out.extend_from_slice(pick(&mut self.rng, &EXTRA_FIELDS)),
            _ => {}
        }
    }

    /// Marks the start of the next field, writing the separator before it.
    fn next_field(&mut self, out: &mut Vec<u8>) {
        if self.fields > 0 {
            out.push(b',');
        }
        self.field_starts.push(out.len());
        self.fields += 1;
    }

    /// A row of a declared kind: a plausible value of each column's type
    /// (every tenth value of an optional column left empty). `BadValue`
    /// breaks the first column whose type text cannot pass; `NonUtf8` puts
    /// bytes that are not UTF-8 into the first column.
    fn push_declared(&mut self, out: &mut Vec<u8>, micros: i64, defect: Option<InvalidClass>) {
        let kind = self.kind.clone();
        let breakable = kind
            .columns()
            .iter()
            .position(|c| !matches!(c.ty, ColumnType::Text | ColumnType::Url));
        for (i, col) in kind.columns().iter().enumerate() {
            self.next_field(out);
            if defect == Some(InvalidClass::NonUtf8) && i == 0 {
                out.extend_from_slice(NON_UTF8_NUMBER);
            } else if defect == Some(InvalidClass::BadValue) && Some(i) == breakable {
                out.extend_from_slice(b"x!");
            } else if col.optional && self.rng.random_ratio(1, 10) {
            } else {
                self.push_value(out, &col.ty, micros);
            }
        }
    }

    fn push_value(&mut self, out: &mut Vec<u8>, ty: &ColumnType, micros: i64) {
        match ty {
            ColumnType::Text => {
                out.extend_from_slice(b"note-");
                push_u64(out, self.rng.random_range(0..1000u64));
            }
            ColumnType::Url => {
                let i = self.rng.random_range(0..self.urls.len());
                out.extend_from_slice(&self.urls[i]);
            }
            ColumnType::Digits { min, max } => {
                let number = self.pool.pick(&mut self.rng).as_bytes();
                if (usize::from(*min)..=usize::from(*max)).contains(&number.len()) {
                    out.extend_from_slice(number);
                } else {
                    let len = self.rng.random_range(*min..=*max);
                    for _ in 0..len {
                        out.push(b'0' + self.rng.random_range(0..10u8));
                    }
                }
            }
            ColumnType::Unsigned => {
                let n = self.skewed_bytes(0);
                push_u64(out, n);
            }
            ColumnType::Signed => {
                let n: i64 = self.rng.random_range(-100_000..100_000);
                if n < 0 {
                    out.push(b'-');
                }
                push_u64(out, n.unsigned_abs());
            }
            ColumnType::Decimal { scale } => {
                push_u64(out, self.rng.random_range(0..10_000u64));
                if *scale > 0 {
                    out.push(b'.');
                    for _ in 0..*scale {
                        out.push(b'0' + self.rng.random_range(0..10u8));
                    }
                }
            }
            ColumnType::Enum { symbols } => {
                let i = self.rng.random_range(0..symbols.len());
                push_csv_field(out, symbols[i].as_bytes());
            }
            ColumnType::Ip => self.push_ip(out),
            ColumnType::Timestamp { precision, .. } => {
                let start = out.len();
                self.clock.push(out, micros);
                // The writer gives microseconds (a zero fraction dropped):
                // cut the fraction to the column's precision.
                if let Some(dot) = out[start..].iter().position(|&b| b == b'.') {
                    let keep = match *precision {
                        0 => dot,
                        p => (dot + 1 + usize::from(p)).min(out.len() - start),
                    };
                    out.truncate(start + keep);
                }
            }
        }
    }

    fn push_data(&mut self, out: &mut Vec<u8>, micros: i64, defect: Option<InvalidClass>) {
        use InvalidClass::*;
        self.next_field(out);
        self.push_msisdn(out, defect == Some(BadMsisdn));

        self.next_field(out);
        self.push_tower(out);

        // Downloads outweigh uploads; a non-numeric defect hits one of the two.
        let bad_up = defect == Some(NonNumeric) && self.rng.random_bool(0.5);
        let bad_down = defect == Some(NonNumeric) && !bad_up;
        self.next_field(out);
        if bad_up {
            out.extend_from_slice(pick(&mut self.rng, &BAD_NUMBERS));
        } else {
            let bytes = self.skewed_bytes(0);
            push_u64(out, bytes);
        }
        self.next_field(out);
        if bad_down {
            out.extend_from_slice(pick(&mut self.rng, &BAD_NUMBERS));
        } else {
            let bytes = self.skewed_bytes(3);
            push_u64(out, bytes);
        }

        self.next_field(out);
        if defect == Some(UnknownDataType) {
            out.extend_from_slice(pick(&mut self.rng, &BAD_DATA_TYPES));
        } else {
            out.extend_from_slice(DATA_TYPES[pick_weighted(&mut self.rng, &DATA_TYPES, |t| t.1)].0);
        }

        self.next_field(out);
        if defect == Some(BadIp) {
            out.extend_from_slice(pick(&mut self.rng, &BAD_IPS));
        } else {
            self.push_ip(out);
        }

        self.next_field(out);
        if defect == Some(NonUtf8) {
            out.extend_from_slice(NON_UTF8_URL);
        } else {
            let i = self.rng.random_range(0..self.urls.len());
            out.extend_from_slice(&self.urls[i]);
        }

        self.next_field(out);
        self.push_time(out, micros, defect == Some(BadTimestamp));
    }

    fn push_voice(&mut self, out: &mut Vec<u8>, micros: i64, defect: Option<InvalidClass>) {
        use InvalidClass::*;
        // A bad number is the caller's or the callee's.
        let bad_msisdn = defect == Some(BadMsisdn) && self.rng.random_bool(0.5);
        let bad_dest = defect == Some(BadMsisdn) && !bad_msisdn;

        self.next_field(out);
        self.push_msisdn(out, bad_msisdn);

        self.next_field(out);
        self.push_tower(out);

        self.next_field(out);
        if defect == Some(UnknownCallType) {
            out.extend_from_slice(pick(&mut self.rng, &BAD_CALL_TYPES));
        } else if self.rng.random_ratio(17, 20) {
            out.extend_from_slice(b"voice");
        } else {
            out.extend_from_slice(b"video");
        }

        self.next_field(out);
        if defect == Some(NonUtf8) {
            out.extend_from_slice(NON_UTF8_NUMBER);
        } else if bad_dest {
            out.extend_from_slice(pick(&mut self.rng, &BAD_MSISDNS));
        } else if self.rng.random_ratio(3, 4) {
            // On-net call: the callee is one of our subscribers too.
            out.extend_from_slice(self.pool.pick(&mut self.rng).as_bytes());
        } else {
            out.extend_from_slice(Number::random(&mut self.rng).as_bytes());
        }

        self.next_field(out);
        if defect == Some(NonNumeric) {
            out.extend_from_slice(pick(&mut self.rng, &BAD_NUMBERS));
        } else {
            // Log-uniform over 1..=7200 s: mostly short calls, a few of hours.
            let u: f64 = self.rng.random();
            let secs = (u * 7200f64.ln()).exp() as u64;
            push_u64(out, secs.clamp(1, 7200));
        }

        self.next_field(out);
        self.push_time(out, micros, defect == Some(BadTimestamp));
    }

    fn push_msisdn(&mut self, out: &mut Vec<u8>, bad: bool) {
        if bad {
            out.extend_from_slice(pick(&mut self.rng, &BAD_MSISDNS));
        } else {
            out.extend_from_slice(self.pool.pick(&mut self.rng).as_bytes());
        }
    }

    fn push_tower(&mut self, out: &mut Vec<u8>) {
        let tower = self.rng.random_range(1..=5000u64);
        push_u64(out, tower);
    }

    fn push_time(&mut self, out: &mut Vec<u8>, micros: i64, bad: bool) {
        if bad {
            out.extend_from_slice(pick(&mut self.rng, &BAD_TIMESTAMPS));
        } else {
            self.clock.push(out, micros);
        }
    }

    /// A byte count of a session: most fit in a few hundred KiB, about one in
    /// twelve runs to MiB or GiB. `extra_bits` widens the range (downloads).
    fn skewed_bytes(&mut self, extra_bits: u32) -> u64 {
        let bits = if self.rng.random_ratio(11, 12) {
            self.rng.random_range(7..=20u32)
        } else {
            self.rng.random_range(21..=30u32)
        } + self.rng.random_range(0..=extra_bits);
        self.rng.random_range(1u64 << (bits - 1)..1u64 << bits)
    }

    /// IPv4 for most sessions (carrier-grade NAT, private and public
    /// ranges), IPv6 for about one in twelve, sometimes in `::` shorthand.
    fn push_ip(&mut self, out: &mut Vec<u8>) {
        if self.rng.random_ratio(11, 12) {
            let (first, second) = match self.rng.random_range(0..8) {
                0 | 1 => (100, self.rng.random_range(64..=127u64)),
                2 => (10, self.rng.random_range(0..=255u64)),
                _ => (self.rng.random_range(1..=223u64), self.rng.random_range(0..=255u64)),
            };
            push_u64(out, first);
            out.push(b'.');
            push_u64(out, second);
            for _ in 0..2 {
                out.push(b'.');
                let octet = self.rng.random_range(0..=255u64);
                push_u64(out, octet);
            }
            return;
        }
        let [a, b] = IPV6_PREFIXES[self.rng.random_range(0..IPV6_PREFIXES.len())];
        push_hex(out, a);
        out.push(b':');
        push_hex(out, b);
        if self.rng.random_ratio(1, 4) {
            out.push(b':');
            push_hex(out, self.rng.random());
            out.extend_from_slice(b"::");
            push_hex(out, self.rng.random());
        } else {
            for _ in 0..6 {
                out.push(b':');
                push_hex(out, self.rng.random());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        let mut out = Vec::new();
        push_csv_field(&mut out, b"http://a.b/x?y=1");
        out.push(b'|');
        push_csv_field(&mut out, b"http://a.b/x?ids=1,2");
        out.push(b'|');
        push_csv_field(&mut out, b"say \"hi\"");
        assert_eq!(
            out,
            b"http://a.b/x?y=1|\"http://a.b/x?ids=1,2\"|\"say \"\"hi\"\"\"".to_vec()
        );
    }

    #[test]
    fn numbers_are_11_to_13_digits() {
        let mut rng = SmallRng::seed_from_u64(1);
        for _ in 0..1000 {
            let n = Number::random(&mut rng);
            assert!((11..=13).contains(&n.as_bytes().len()));
            assert!(n.as_bytes().iter().all(u8::is_ascii_digit));
        }
    }
}
