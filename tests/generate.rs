//! The sample-file generator: reproducible bytes, contract-shaped rows, and
//! invalid rows that are what the summary says they are.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;

use cdr_to_redpanda::generate::{generate, GenerateArgs, GenerateError, GenerateSummary, InvalidClass};
use cdr_to_redpanda::schema::{self, Catalog, RecordKind};
use chrono::NaiveDateTime;
use clap::Parser;

fn run(dir: &Path, files: u32, rows: u64, tweak: impl FnOnce(&mut GenerateArgs)) -> GenerateSummary {
    let mut args = GenerateArgs::new(dir, files, rows);
    tweak(&mut args);
    generate(&args).unwrap()
}

/// File name -> content, decompressed for `.gz`.
fn read_dir_csv(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let raw = fs::read(&path).unwrap();
            let csv = if name.ends_with(".gz") {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).unwrap();
                out
            } else {
                raw
            };
            (name, csv)
        })
        .collect()
}

fn read_dir_raw(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            (
                path.file_name().unwrap().to_str().unwrap().to_owned(),
                fs::read(&path).unwrap(),
            )
        })
        .collect()
}

fn records(csv: &[u8]) -> Vec<csv::ByteRecord> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(csv);
    reader.byte_records().map(Result::unwrap).collect()
}

fn kind_of(name: &str) -> RecordKind {
    Catalog::builtin().for_file(name).unwrap().clone()
}

/// The time in a name like `cdr_data_20240101_001000.csv`.
fn name_time(name: &str) -> NaiveDateTime {
    let stamp = name.trim_start_matches("cdr_data_").trim_start_matches("cdr_voice_");
    NaiveDateTime::parse_from_str(&stamp[..15], "%Y%m%d_%H%M%S").unwrap()
}

fn parse_time(s: &str) -> Option<NaiveDateTime> {
    if s.len() != 19 && s.len() != 26 {
        return None;
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok()
}

/// Checks a row against the contract's rules, written independently of the
/// generator. Returns the class names of everything wrong with it.
fn problems(kind: RecordKind, row: &csv::ByteRecord) -> Vec<&'static str> {
    let Ok(fields) = row.iter().map(std::str::from_utf8).collect::<Result<Vec<_>, _>>() else {
        return vec!["non_utf8"];
    };
    let columns: Vec<&str> = kind.columns().iter().map(|c| c.name.as_str()).collect();
    if fields.len() < columns.len() {
        return vec!["too_few_fields"];
    }
    if fields.len() > columns.len() {
        return vec!["too_many_fields"];
    }
    let mut found = Vec::new();
    for (column, value) in columns.iter().zip(&fields) {
        let ok = match *column {
            "msisdn" | "dest_nr" => (6..=15).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()),
            "tower_id" => value.parse::<u32>().is_ok_and(|t| (1..=5000).contains(&t)),
            "up_bytes" | "down_bytes" => value.parse::<u64>().is_ok_and(|b| b > 0),
            "call_duration_sec" => value.parse::<u64>().is_ok_and(|d| (1..=7200).contains(&d)),
            "data_type" => ["application", "text", "image", "video"].contains(value),
            "call_type" => ["voice", "video"].contains(value),
            "ip_address" => value.parse::<IpAddr>().is_ok(),
            "website_url" => value.starts_with("http://") || value.starts_with("https://"),
            "event_datetime" | "start_time" => parse_time(value).is_some(),
            other => panic!("unexpected column {other}"),
        };
        if !ok {
            found.push(match *column {
                "msisdn" | "dest_nr" => "bad_msisdn",
                "up_bytes" | "down_bytes" | "call_duration_sec" => "non_numeric",
                "data_type" => "unknown_data_type",
                "call_type" => "unknown_call_type",
                "ip_address" => "bad_ip",
                "event_datetime" | "start_time" => "bad_timestamp",
                _ => "unexpected",
            });
        }
    }
    found
}

#[test]
fn same_seed_writes_identical_bytes_plain_and_gzip() {
    for gzip in [false, true] {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let tweak = |args: &mut GenerateArgs| {
            args.gzip = gzip;
            args.bad_rate = 0.1;
        };
        run(a.path(), 3, 500, tweak);
        run(b.path(), 3, 500, tweak);
        let (a, b) = (read_dir_raw(a.path()), read_dir_raw(b.path()));
        assert_eq!(a.len(), 6);
        assert_eq!(a, b, "gzip={gzip}");
    }
}

#[test]
fn different_seed_writes_different_rows() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run(a.path(), 1, 200, |_| {});
    run(b.path(), 1, 200, |args| args.seed = 43);
    let (a, b) = (read_dir_raw(a.path()), read_dir_raw(b.path()));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "names depend on time only"
    );
    for (name, bytes) in &a {
        assert_ne!(bytes, &b[name], "{name}");
    }
}

#[test]
fn gzip_decodes_to_the_plain_csv_and_has_no_name_or_mtime() {
    let (plain, gz) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let plain_summary = run(plain.path(), 2, 300, |args| args.bad_rate = 0.2);
    let gz_summary = run(gz.path(), 2, 300, |args| {
        args.bad_rate = 0.2;
        args.gzip = true;
    });
    let plain_files = read_dir_csv(plain.path());
    let gz_files = read_dir_csv(gz.path());
    assert_eq!(plain_files.len(), 4);
    for (name, csv) in &plain_files {
        assert_eq!(&gz_files[&format!("{name}.gz")], csv, "{name}");
    }
    for (name, raw) in read_dir_raw(gz.path()) {
        assert_eq!(&raw[..3], &[0x1f, 0x8b, 8], "{name}: gzip magic, deflate");
        assert_eq!(raw[3] & 0x08, 0, "{name}: no file name in the header");
        assert_eq!(&raw[4..8], &[0, 0, 0, 0], "{name}: no mtime");
    }
    for (p, g) in plain_summary.files.iter().zip(&gz_summary.files) {
        assert_eq!(format!("{}.gz", p.name), g.name);
        assert_eq!((p.rows, &p.invalid_by_class), (g.rows, &g.invalid_by_class));
        assert!(g.bytes < p.bytes);
    }
}

#[test]
fn names_and_event_times_are_chronological_and_kinds_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(dir.path(), 4, 400, |_| {});
    let files = read_dir_csv(dir.path());
    assert_eq!(files.len(), 8, "no .tmp left behind: {:?}", files.keys());
    assert!(files.keys().all(|n| n.ends_with(".csv")));

    // The summary lists files in time order, kinds alternating.
    let times: Vec<NaiveDateTime> = summary.files.iter().map(|f| name_time(&f.name)).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    assert_eq!(times[0], GenerateArgs::new(dir.path(), 1, 1).start);
    let kinds: Vec<&str> = summary.files.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, ["data", "voice"].repeat(4));

    for kind in [schema::data(), schema::voice()] {
        // Name order is time order, and each file's events lie inside its
        // window, after every event of the file before.
        let names: Vec<&String> = files.keys().filter(|n| kind_of(n) == kind).collect();
        let in_summary: Vec<&String> = summary
            .files
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| &f.name)
            .collect();
        assert_eq!(names, in_summary);
        let mut last_event = None;
        for (i, name) in names.iter().enumerate() {
            let window_start = name_time(name);
            let window_end = names
                .get(i + 1)
                .map_or(window_start + chrono::Duration::seconds(600), |n| name_time(n));
            for row in records(&files[*name]).iter().skip(1) {
                let t = parse_time(std::str::from_utf8(&row[kind.columns().len() - 1]).unwrap()).unwrap();
                assert!(t >= window_start && t < window_end, "{name}: {t}");
                assert!(last_event < Some(t), "{name}: {t} not after {last_event:?}");
                last_event = Some(t);
            }
        }
    }
}

#[test]
fn header_is_the_contract_column_order() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), 1, 0, |_| {});
    let files = read_dir_csv(dir.path());
    assert_eq!(
        files["cdr_data_20240101_000000.csv"],
        b"msisdn,tower_id,up_bytes,down_bytes,data_type,ip_address,website_url,event_datetime\n"
    );
    assert_eq!(
        files["cdr_voice_20240101_000500.csv"],
        b"msisdn,tower_id,call_type,dest_nr,call_duration_sec,start_time\n"
    );
}

#[test]
fn valid_rows_pass_the_contract_checks_and_vary() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(dir.path(), 1, 2000, |_| {});
    assert_eq!(summary.invalid_rows, 0);
    assert!(summary.invalid_by_class.is_empty());
    for (name, csv) in read_dir_csv(dir.path()) {
        let kind = kind_of(&name);
        assert!(!csv.contains(&b'\r'), "{name}: LF line endings only");
        assert_eq!(csv.iter().filter(|&&b| b == b'\n').count(), 2001, "{name}");
        let rows = records(&csv);
        let mut ipv6 = 0;
        let mut quoted = 0;
        let mut video = 0;
        let mut callers = std::collections::HashSet::new();
        for (i, row) in rows.iter().enumerate().skip(1) {
            assert_eq!(
                problems(kind.clone(), row),
                Vec::<&str>::new(),
                "{name} row {i}: {row:?}"
            );
            callers.insert(row[0].to_vec());
            match kind.as_str() {
                "data" => {
                    ipv6 += usize::from(row[5].contains(&b':'));
                    quoted += usize::from(row[6].contains(&b','));
                }
                _ => video += usize::from(&row[2] == b"video"),
            }
        }
        assert!(
            callers.len() < 1900,
            "{name}: numbers repeat ({} distinct)",
            callers.len()
        );
        match kind.as_str() {
            "data" => {
                assert!((40..400).contains(&ipv6), "{name}: some IPv6 ({ipv6})");
                assert!(quoted > 0, "{name}: some URLs need quoting");
            }
            _ => assert!((100..600).contains(&video), "{name}: mostly voice ({video} video)"),
        }
    }
}

#[test]
fn every_invalid_class_appears_and_the_summary_counts_match_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(dir.path(), 1, 2000, |args| args.bad_rate = 0.2);
    let files = read_dir_csv(dir.path());
    let mut total = BTreeMap::new();
    for file in &summary.files {
        let mut counted: BTreeMap<String, u64> = BTreeMap::new();
        for (i, row) in records(&files[&file.name]).iter().enumerate().skip(1) {
            match problems(file.kind.clone(), row)[..] {
                [] => {}
                [class] => *counted.entry(class.to_owned()).or_default() += 1,
                ref many => panic!("{} row {i} has more than one problem: {many:?}", file.name),
            }
        }
        let expected: Vec<&str> = InvalidClass::for_kind(&file.kind).iter().map(|c| c.as_str()).collect();
        assert_eq!(counted.keys().map(String::as_str).collect::<Vec<_>>(), {
            let mut e = expected.clone();
            e.sort();
            e
        });
        assert_eq!(counted, file.invalid_by_class, "{}", file.name);
        let invalid: u64 = counted.values().sum();
        assert_eq!(invalid, file.invalid_rows);
        assert!(
            (300..500).contains(&invalid),
            "{}: about 20% of 2000 ({invalid})",
            file.name
        );
        for (class, n) in counted {
            *total.entry(class).or_default() += n;
        }
    }
    assert_eq!(total, summary.invalid_by_class);
    assert_eq!(summary.invalid_rows, total.values().sum::<u64>());
    assert_eq!(summary.rows, 4000);
    assert_eq!(summary.bytes, summary.files.iter().map(|f| f.bytes).sum::<u64>());
}

#[test]
fn bad_arguments_are_rejected_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never");
    for bad_rate in [-0.1, 1.5, f64::NAN] {
        let err = generate(&GenerateArgs {
            bad_rate,
            ..GenerateArgs::new(&out, 1, 1)
        })
        .unwrap_err();
        assert!(matches!(err, GenerateError::BadRate(_)), "{err}");
    }
    let err = generate(&GenerateArgs {
        kinds: vec![],
        ..GenerateArgs::new(&out, 1, 1)
    })
    .unwrap_err();
    assert!(matches!(err, GenerateError::NoKinds), "{err}");
    let start = NaiveDateTime::parse_from_str("9999-12-31 23:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
    let err = generate(&GenerateArgs {
        start,
        ..GenerateArgs::new(&out, 10, 1)
    })
    .unwrap_err();
    assert!(matches!(err, GenerateError::TimeOutOfRange { .. }), "{err}");
    assert!(!out.exists());
}

#[test]
fn an_unwritable_directory_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, b"").unwrap();
    let err = generate(&GenerateArgs::new(&file, 1, 1)).unwrap_err();
    assert!(matches!(err, GenerateError::Io { .. }), "{err}");
    assert!(err.to_string().contains("a-file"), "{err}");
}

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    args: GenerateArgs,
}

#[test]
fn command_line_defaults_and_lists_parse() {
    let cli = Cli::try_parse_from(["generate", "--out", "d", "--files", "2", "--rows", "5"])
        .unwrap()
        .args;
    let defaults = GenerateArgs::new("d", 2, 5);
    assert_eq!(cli.kinds, defaults.kinds);
    assert_eq!(
        (cli.seed, cli.bad_rate, cli.gzip, cli.start),
        (defaults.seed, defaults.bad_rate, defaults.gzip, defaults.start)
    );

    let cli = Cli::try_parse_from([
        "generate",
        "--out",
        "d",
        "--files",
        "1",
        "--rows",
        "1",
        "--kinds",
        "voice",
        "--bad-rate",
        "0.5",
        "--gzip",
        "--seed",
        "7",
        "--start",
        "2024-03-01 12:30:00",
    ])
    .unwrap()
    .args;
    assert_eq!(cli.kinds, vec!["voice".to_string()]);
    assert_eq!((cli.seed, cli.bad_rate, cli.gzip), (7, 0.5, true));
    assert_eq!(cli.start.to_string(), "2024-03-01 12:30:00");
    let cli = Cli::try_parse_from([
        "generate",
        "--out",
        "d",
        "--files",
        "1",
        "--rows",
        "1",
        "--start",
        "2024-03-01T06:00:00",
    ]);
    assert_eq!(cli.unwrap().args.start.to_string(), "2024-03-01 06:00:00");

    for bad in [["--bad-rate", "2"], ["--start", "yesterday"]] {
        let argv = ["generate", "--out", "d", "--files", "1", "--rows", "1", bad[0], bad[1]];
        assert!(Cli::try_parse_from(argv).is_err(), "{bad:?}");
    }
    // Kinds may be declared, so an unknown one is refused when the catalog is known.
    let dir = tempfile::tempdir().unwrap();
    let mut args = GenerateArgs::new(dir.path(), 1, 1);
    args.kinds = vec!["fax".into()];
    let refused = generate(&args).unwrap_err().to_string();
    assert_eq!(refused, r#"unknown kind "fax": expected one of data, voice"#);
}

#[test]
fn a_files_bytes_do_not_depend_on_the_other_files() {
    let (one, many) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run(one.path(), 1, 300, |args| {
        args.kinds = vec!["voice".into()];
        args.bad_rate = 0.1;
    });
    run(many.path(), 3, 300, |args| args.bad_rate = 0.1);
    let (one, many) = (read_dir_raw(one.path()), read_dir_raw(many.path()));
    let (name, bytes) = one.iter().next().unwrap();
    assert_eq!(&many[name], bytes, "{name}");
}
