//! `generate`: writes sample CDR files, as the switch would drop them on the
//! SFTP server, for demos, tests and load runs.
//!
//! Output is a pure function of the arguments: each file draws from its own
//! random stream, seeded from (seed, kind, file index), so the same arguments
//! write byte-identical files (gzip included: no name or mtime in its header),
//! whichever thread writes which file. The streams come from `rand`'s
//! `SmallRng`, which is not promised to stay the same across `rand` releases:
//! the bytes are reproducible for one build of the tool, not forever.
//!
//! Files of one kind start [`FILE_INTERVAL_SECS`] apart from `--start`; voice
//! files sit halfway between data files, so the two kinds interleave in time.
//! A file's name carries the start of its time window, and its rows have
//! strictly increasing event times inside that window. Each file is written as
//! `<name>.tmp` and renamed when complete, so a watcher never sees a
//! half-written file under its real name.

mod rows;
mod text;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};
use flate2::{Compression, GzBuilder};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::config::KindArgs;
use crate::schema::builtin::{DATA_TOPIC, VOICE_TOPIC};
use crate::schema::{RecordKind, SchemaError};
use rows::{mix, RowWriter, SubscriberPool};

/// Seed used when `--seed` is not given.
pub const DEFAULT_SEED: u64 = 42;

/// Start of the first file's window when `--start` is not given.
pub const DEFAULT_START: NaiveDateTime = match NaiveDate::from_ymd_opt(2024, 1, 1) {
    Some(day) => day.and_time(NaiveTime::MIN),
    None => panic!("2024-01-01 is a date"),
};

/// Spacing of consecutive files of one kind, and the length of each file's
/// time window. A file with more rows than this has microseconds gets a
/// longer window, so that event times stay strictly increasing.
pub const FILE_INTERVAL_SECS: i64 = 600;

/// Size of the write buffer in front of each file (and of the gzip encoder).
const WRITE_BUFFER: usize = 1 << 20;

/// Fixed so that the compressed bytes depend only on the CSV bytes. The fast
/// level: about 15% bigger than the default level 6, and five times quicker.
const GZIP_LEVEL: u32 = 1;

/// Write sample CDR files as the switch would drop them: same arguments, same
/// bytes; `--bad-rate` mixes in invalid rows of each sort the parser must reject.
#[derive(clap::Args, Debug, Clone)]
pub struct GenerateArgs {
    /// Directory to write the files into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Number of files to write for each kind.
    #[arg(long, value_name = "N")]
    pub files: u32,

    /// Rows per file, not counting the header line.
    #[arg(long, value_name = "R")]
    pub rows: u64,

    /// Seed of the random streams: the same arguments always write the same bytes.
    #[arg(long, value_name = "S", default_value_t = DEFAULT_SEED)]
    pub seed: u64,

    /// Fraction of rows (0 to 1) replaced by an invalid row; the invalid rows
    /// take the classes that apply to the kind in turn.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_bad_rate)]
    pub bad_rate: f64,

    /// Write gzip-compressed `.csv.gz` files instead of `.csv`.
    #[arg(long)]
    pub gzip: bool,

    /// Kinds of file to write, comma-separated: data, voice or any declared kind.
    #[arg(long, value_name = "KINDS", value_delimiter = ',', default_value = "data,voice")]
    pub kinds: Vec<String>,

    /// The kinds that may be named: the built-in ones and those declared.
    #[command(flatten)]
    pub declared: KindArgs,

    /// Start of the first file's time window, UTC (`YYYY-MM-DDTHH:MM:SS`,
    /// a space instead of `T`, or a bare date).
    #[arg(long, value_name = "TIME", default_value_t = DEFAULT_START, value_parser = parse_start)]
    pub start: NaiveDateTime,
}

impl GenerateArgs {
    /// `files` files of `rows` rows of each kind into `out`, every other
    /// setting at its default.
    pub fn new(out: impl Into<PathBuf>, files: u32, rows: u64) -> GenerateArgs {
        GenerateArgs {
            out: out.into(),
            files,
            rows,
            seed: DEFAULT_SEED,
            bad_rate: 0.0,
            gzip: false,
            kinds: vec!["data".into(), "voice".into()],
            declared: KindArgs::default(),
            start: DEFAULT_START,
        }
    }
}

/// What `generate` wrote, in time order of the files' windows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GenerateSummary {
    /// Each file written.
    pub files: Vec<GeneratedFile>,
    /// Rows over all files, invalid ones included, headers not.
    pub rows: u64,
    /// Rows written invalid on purpose, over all files.
    pub invalid_rows: u64,
    /// Invalid rows per [`InvalidClass::as_str`], over all files (classes that
    /// occurred only).
    pub invalid_by_class: BTreeMap<String, u64>,
    /// Bytes on disk over all files.
    pub bytes: u64,
}

/// One file `generate` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GeneratedFile {
    /// File name inside the output directory.
    pub name: String,
    /// The kind of CDR it holds.
    #[serde(serialize_with = "serialize_kind")]
    pub kind: RecordKind,
    /// Rows, invalid ones included, header not.
    pub rows: u64,
    /// Rows written invalid on purpose.
    pub invalid_rows: u64,
    /// Invalid rows per [`InvalidClass::as_str`] (classes that occurred only).
    pub invalid_by_class: BTreeMap<String, u64>,
    /// Size on disk (compressed size for `.csv.gz`).
    pub bytes: u64,
}

/// The ways `--bad-rate` breaks a row; each invalid row has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InvalidClass {
    /// One or two trailing fields missing.
    TooFewFields,
    /// One or two fields more than the header.
    TooManyFields,
    /// data: `up_bytes` or `down_bytes`; voice: `call_duration_sec` is not an
    /// unsigned integer (`12k`, `-42`, `1.5e3`, ...).
    NonNumeric,
    /// The event time is not a valid `YYYY-MM-DD HH:MM:SS` (`yesterday`,
    /// `2024-13-45 25:61:00`, ...).
    BadTimestamp,
    /// data only: `ip_address` is neither IPv4 nor IPv6 (`300.1.2.3`, ...).
    BadIp,
    /// data only: `data_type` outside application, text, image, video.
    UnknownDataType,
    /// voice only: `call_type` outside voice, video (`fax`, ...).
    UnknownCallType,
    /// `msisdn` (or voice `dest_nr`) is not 6 to 15 digits (`123`, letters, `+`).
    BadMsisdn,
    /// Bytes 0xff 0xfe inside a field (data: `website_url`; voice: `dest_nr`;
    /// a declared kind: its first column).
    NonUtf8,
    /// A declared kind only: its first column that is not text holds `x!`.
    BadValue,
}

impl InvalidClass {
    /// Every class, in the order the invalid rows of a file take them.
    pub const ALL: [InvalidClass; 10] = [
        InvalidClass::TooFewFields,
        InvalidClass::TooManyFields,
        InvalidClass::NonNumeric,
        InvalidClass::BadTimestamp,
        InvalidClass::BadIp,
        InvalidClass::UnknownDataType,
        InvalidClass::UnknownCallType,
        InvalidClass::BadMsisdn,
        InvalidClass::NonUtf8,
        InvalidClass::BadValue,
    ];

    /// The key in `invalid_by_class`.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidClass::TooFewFields => "too_few_fields",
            InvalidClass::TooManyFields => "too_many_fields",
            InvalidClass::NonNumeric => "non_numeric",
            InvalidClass::BadTimestamp => "bad_timestamp",
            InvalidClass::BadIp => "bad_ip",
            InvalidClass::UnknownDataType => "unknown_data_type",
            InvalidClass::UnknownCallType => "unknown_call_type",
            InvalidClass::BadMsisdn => "bad_msisdn",
            InvalidClass::NonUtf8 => "non_utf8",
            InvalidClass::BadValue => "bad_value",
        }
    }

    /// The classes that can break a row of `kind`.
    pub fn for_kind(kind: &RecordKind) -> &'static [InvalidClass] {
        use InvalidClass::*;
        match kind.as_str() {
            // A catalog never holds a second kind of a built-in name.
            "data" => &[
                TooFewFields,
                TooManyFields,
                NonNumeric,
                BadTimestamp,
                BadIp,
                UnknownDataType,
                BadMsisdn,
                NonUtf8,
            ],
            "voice" => &[
                TooFewFields,
                TooManyFields,
                NonNumeric,
                BadTimestamp,
                UnknownCallType,
                BadMsisdn,
                NonUtf8,
            ],
            _ => &[TooFewFields, TooManyFields, BadValue, NonUtf8],
        }
    }
}

/// Why `generate` wrote nothing, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// `--bad-rate` outside 0 to 1.
    #[error("bad rate must be a fraction from 0 to 1, got {0}")]
    BadRate(f64),
    /// `--kinds` named none.
    #[error("no kinds to generate: name data, voice or a declared kind")]
    NoKinds,
    /// `--kinds` named a kind neither built in nor declared.
    #[error("unknown kind {name:?}: expected one of {known}")]
    UnknownKind {
        /// The name given.
        name: String,
        /// The kinds there are.
        known: String,
    },
    /// A kind declaration that cannot be used.
    #[error(transparent)]
    Kinds(SchemaError),
    /// No file name the kind's globs route to it can be made from its first glob.
    #[error("kind {kind:?}: a generated name such as {name:?} does not match its `files` globs; put a `*` where the timestamp goes in the first glob")]
    Unnamed {
        /// The kind.
        kind: String,
        /// The name tried.
        name: String,
    },
    /// The files' time windows would leave the calendar chrono knows.
    #[error("{files} files from {start} would run past the years 0001 to 9999")]
    TimeOutOfRange {
        /// `--start`.
        start: NaiveDateTime,
        /// `--files`.
        files: u32,
    },
    /// Writing a file failed.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: io::Error,
    },
}

impl GenerateError {
    fn io<'a>(context: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> GenerateError + 'a {
        move |source| GenerateError::Io {
            context,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Writes the files `args` describes and says what went into them.
///
/// Files are written by up to as many threads as the machine has cores. On an
/// error no `.tmp` file of the failed file is left behind, but files already
/// complete stay (each under its real name, whole).
pub fn generate(args: &GenerateArgs) -> Result<GenerateSummary, GenerateError> {
    let jobs = plan(args)?;
    fs::create_dir_all(&args.out).map_err(GenerateError::io("cannot create directory", &args.out))?;
    let pool = SubscriberPool::new(args.seed);

    let workers = thread::available_parallelism().map_or(1, |n| n.get()).min(jobs.len());
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let mut results: Vec<Option<Result<GeneratedFile, GenerateError>>> = Vec::new();
    results.resize_with(jobs.len(), || None);
    thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        let result = write_file(job, args, &pool);
                        if result.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        done.push((i, result));
                    }
                    done
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(done) => {
                    for (i, result) in done {
                        results[i] = Some(result);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });

    let mut summary = GenerateSummary {
        files: Vec::with_capacity(jobs.len()),
        rows: 0,
        invalid_rows: 0,
        invalid_by_class: BTreeMap::new(),
        bytes: 0,
    };
    // Jobs after a failure were never started; the first failure is the one to report.
    for file in results.into_iter().flatten() {
        let file = file?;
        summary.rows += file.rows;
        summary.invalid_rows += file.invalid_rows;
        summary.bytes += file.bytes;
        for (class, n) in &file.invalid_by_class {
            *summary.invalid_by_class.entry(class.clone()).or_default() += n;
        }
        summary.files.push(file);
    }
    Ok(summary)
}

/// One file to write.
struct FileJob {
    kind: RecordKind,
    name: String,
    /// Window start, microseconds since the Unix epoch (UTC).
    window_start: i64,
    window_len: i64,
    seed: u64,
}

/// Validates `args` and lays out the files, in time order. No I/O.
fn plan(args: &GenerateArgs) -> Result<Vec<FileJob>, GenerateError> {
    check_bad_rate(args.bad_rate)?;
    let catalog = args
        .declared
        .catalog(DATA_TOPIC, VOICE_TOPIC)
        .map_err(GenerateError::Kinds)?;
    let mut kinds = Vec::new();
    for name in &args.kinds {
        let name = name.trim();
        let kind = catalog.get(name).ok_or_else(|| GenerateError::UnknownKind {
            name: name.to_owned(),
            known: catalog
                .iter()
                .map(|k| k.as_str().to_owned())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        // The seed's stream number: the kind's place in the catalog.
        let stream = catalog.iter().position(|k| k == kind).unwrap_or_default() as u64;
        kinds.push((kind.clone(), stream));
    }
    kinds.sort();
    kinds.dedup();
    if kinds.is_empty() {
        return Err(GenerateError::NoKinds);
    }

    // Whole seconds, so that names (second resolution) stay unique.
    let interval = FILE_INTERVAL_SECS.max(i64::try_from(args.rows.div_ceil(1_000_000)).unwrap_or(i64::MAX));
    let out_of_range = || GenerateError::TimeOutOfRange {
        start: args.start,
        files: args.files,
    };
    let at = |offset_secs: i64| {
        TimeDelta::try_seconds(offset_secs)
            .and_then(|d| args.start.checked_add_signed(d))
            .filter(|t| (1..=9999).contains(&t.year()))
            .ok_or_else(out_of_range)
    };
    // The end of the last window must be writable too.
    let span = interval
        .checked_mul(i64::from(args.files) + 1)
        .ok_or_else(out_of_range)?;
    at(0)?;
    at(span)?;

    let extension = if args.gzip { "csv.gz" } else { "csv" };
    let mut jobs = Vec::with_capacity(kinds.len() * args.files as usize);
    for index in 0..args.files {
        for (kind, stream) in &kinds {
            // Voice files start half an interval after data files, as a
            // mediation system's two feeds would.
            let offset = interval * i64::from(index) + if kind.as_str() == "voice" { interval / 2 } else { 0 };
            let window_start = at(offset)?;
            let name = file_name(kind, &window_start.format("%Y%m%d_%H%M%S").to_string(), extension)?;
            jobs.push(FileJob {
                kind: kind.clone(),
                name,
                window_start: window_start.and_utc().timestamp_micros(),
                window_len: interval * 1_000_000,
                seed: mix(mix(args.seed, *stream), u64::from(index)),
            });
        }
    }
    Ok(jobs)
}

/// `<what the kind's first glob has before its first *><stamp>.<extension>`,
/// if the kind's globs route that name to it.
fn file_name(kind: &RecordKind, stamp: &str, extension: &str) -> Result<String, GenerateError> {
    let glob = &kind.spec().files[0];
    let prefix = &glob[..glob.find(['*', '?']).unwrap_or(glob.len())];
    let name = format!("{prefix}{stamp}.{extension}");
    if kind.matches(&name) {
        Ok(name)
    } else {
        Err(GenerateError::Unnamed {
            kind: kind.as_str().to_owned(),
            name,
        })
    }
}

fn write_file(job: &FileJob, args: &GenerateArgs, pool: &SubscriberPool) -> Result<GeneratedFile, GenerateError> {
    let path = args.out.join(&job.name);
    let tmp = args.out.join(format!("{}.tmp", job.name));
    let result = write_tmp(job, args, pool, &tmp).and_then(|file| {
        fs::rename(&tmp, &path).map_err(GenerateError::io("cannot rename into", &path))?;
        Ok(file)
    });
    if result.is_err() {
        // Best effort: the error being reported matters more than this one.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_tmp(
    job: &FileJob,
    args: &GenerateArgs,
    pool: &SubscriberPool,
    tmp: &Path,
) -> Result<GeneratedFile, GenerateError> {
    let io_err = GenerateError::io("cannot write", tmp);
    let file = File::create(tmp).map_err(GenerateError::io("cannot create", tmp))?;
    let counts = if args.gzip {
        let encoder = GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(file, Compression::new(GZIP_LEVEL));
        let mut w = BufWriter::with_capacity(WRITE_BUFFER, encoder);
        let counts = write_rows(&mut w, job, args, pool);
        counts
            .and_then(|counts| {
                w.into_inner().map_err(io::IntoInnerError::into_error)?.finish()?;
                Ok(counts)
            })
            .map_err(io_err)?
    } else {
        let mut w = BufWriter::with_capacity(WRITE_BUFFER, file);
        let counts = write_rows(&mut w, job, args, pool);
        counts
            .and_then(|counts| {
                w.into_inner().map_err(io::IntoInnerError::into_error)?;
                Ok(counts)
            })
            .map_err(io_err)?
    };
    let bytes = fs::metadata(tmp).map_err(GenerateError::io("cannot stat", tmp))?.len();
    let invalid_by_class: BTreeMap<String, u64> = InvalidClass::ALL
        .iter()
        .filter(|c| counts[**c as usize] > 0)
        .map(|c| (c.as_str().to_owned(), counts[*c as usize]))
        .collect();
    Ok(GeneratedFile {
        name: job.name.clone(),
        kind: job.kind.clone(),
        rows: args.rows,
        invalid_rows: invalid_by_class.values().sum(),
        invalid_by_class,
        bytes,
    })
}

/// Writes header and rows; returns the invalid rows per `InvalidClass` index.
fn write_rows<W: Write>(
    w: &mut W,
    job: &FileJob,
    args: &GenerateArgs,
    pool: &SubscriberPool,
) -> io::Result<[u64; InvalidClass::ALL.len()]> {
    let mut header = job.kind.header();
    header.push('\n');
    w.write_all(header.as_bytes())?;

    let mut writer = RowWriter::new(job.kind.clone(), SmallRng::seed_from_u64(job.seed), pool);
    let classes = InvalidClass::for_kind(&job.kind);
    let mut next_class = writer.rng().random_range(0..classes.len());
    let mut counts = [0u64; InvalidClass::ALL.len()];
    // Row i's time lies in [i * step, (i + 1) * step) of the window: strictly
    // increasing, and never past the window's end.
    let step = (job.window_len as u64).checked_div(args.rows).unwrap_or(0);
    let mut line = Vec::with_capacity(512);
    for i in 0..args.rows {
        let rng = writer.rng();
        let micros = job.window_start + (i * step + rng.random_range(0..step)) as i64;
        let defect = if args.bad_rate > 0.0 && rng.random_bool(args.bad_rate) {
            let class = classes[next_class];
            next_class = (next_class + 1) % classes.len();
            counts[class as usize] += 1;
            Some(class)
        } else {
            None
        };
        line.clear();
        writer.push_row(&mut line, micros, defect);
        line.push(b'\n');
        w.write_all(&line)?;
    }
    Ok(counts)
}

fn check_bad_rate(p: f64) -> Result<f64, GenerateError> {
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(GenerateError::BadRate(p))
    }
}

fn parse_bad_rate(s: &str) -> Result<f64, String> {
    let p: f64 = s.trim().parse().map_err(|e| format!("{s:?} is not a number: {e}"))?;
    check_bad_rate(p).map_err(|e| e.to_string())
}

fn parse_start(s: &str) -> Result<NaiveDateTime, String> {
    let s = s.trim();
    s.parse::<NaiveDateTime>()
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .or_else(|_| s.parse::<NaiveDate>().map(|d| d.and_time(NaiveTime::MIN)))
        .map_err(|_| format!("{s:?} is not a time: expected YYYY-MM-DDTHH:MM:SS"))
}

fn serialize_kind<S: serde::Serializer>(kind: &RecordKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_str())
}
