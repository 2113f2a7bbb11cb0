//! How the file store's costs change as it grows: fills a data directory to
//! 1k, 10k, 100k (and, on request, 1M) secrets and one secret to 10, 1k and
//! 10k versions, and prints the latency of reading the latest version,
//! reading a given version, writing a new version and listing a prefix that
//! holds 10 secrets at each size, plus the bytes on disk per secret.
//!
//! ```sh
//! cargo run --release --example growth --manifest-path plugins/Cargo.toml \
//!     -p tresor-plugin-file --target-dir /tmp/target-file -- \
//!     [--dir DIR] [--secrets 1000,10000,100000] [--versions 10,1000,10000] [--threads 16]
//! ```
//!
//! It drives the store natively (no wasm, no host; the store's sources are
//! compiled in, as the crate is a component only), with a stand-in sealer
//! that costs next to nothing, so what it measures is the store and the file
//! system. Writes are durable (every `put` syncs its file and directory), so
//! their latency is mostly the disk's sync latency. The data directory
//! (a fresh one under the system temporary directory unless `--dir` is
//! given) is removed at the end unless `--keep` is given.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tresor_plugin_sdk::Error;

// The crate builds only as a component, so its store is compiled in here.
#[allow(dead_code)]
#[path = "../src/layout.rs"]
mod layout;
#[allow(dead_code)]
#[path = "../src/settings.rs"]
mod settings;
#[allow(dead_code)]
#[path = "../src/store.rs"]
mod store;

use store::{Sealer, Store};

/// Secrets per folder: a LIST of one folder returns this many.
const PER_FOLDER: usize = 10;

/// XORs the value and prepends the context: cheap, and wrong-context fails.
struct CheapSealer;

impl Sealer for CheapSealer {
    fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = (context.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(context);
        out.extend(plaintext.iter().map(|b| b ^ 0x5a));
        Ok(out)
    }

    fn unseal(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
        let len = u32::from_le_bytes(sealed[..4].try_into().unwrap()) as usize;
        if &sealed[4..4 + len] != context {
            return Err(Error::invalid_input("wrong context"));
        }
        Ok(sealed[4 + len..].iter().map(|b| b ^ 0x5a).collect())
    }

    fn reseal(&self, _: &[u8], _: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(None)
    }
}

struct Options {
    dir: Option<PathBuf>,
    secrets: Vec<usize>,
    versions: Vec<usize>,
    threads: usize,
    keep: bool,
}

fn options() -> Options {
    let mut options = Options {
        dir: None,
        secrets: vec![1_000, 10_000, 100_000],
        versions: vec![10, 1_000, 10_000],
        threads: 16,
        keep: false,
    };
    let list = |text: String| -> Vec<usize> { text.split(',').map(|n| n.trim().parse().unwrap()).collect() };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dir" => options.dir = args.next().map(PathBuf::from),
            "--secrets" => options.secrets = list(args.next().unwrap()),
            "--versions" => options.versions = list(args.next().unwrap()),
            "--threads" => options.threads = args.next().unwrap().parse().unwrap(),
            "--keep" => options.keep = true,
            other => panic!("unknown argument {other}: see the doc comment of examples/growth.rs"),
        }
    }
    options
}

/// A small xorshift generator: picks secrets at random without a crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Latencies of one operation.
struct Stats {
    samples: Vec<Duration>,
}

impl Stats {
    fn median(&self) -> Duration {
        self.samples[self.samples.len() / 2]
    }

    fn p90(&self) -> Duration {
        self.samples[self.samples.len() * 9 / 10]
    }

    fn cell(&self) -> String {
        format!("{} / {}", show(self.median()), show(self.p90()))
    }
}

/// Runs `op` up to `max` times, or as often as fits in `budget` (at least
/// 3 times), and sorts the latencies.
fn measure(max: usize, budget: Duration, mut op: impl FnMut()) -> Stats {
    let started = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < max && (samples.len() < 3 || started.elapsed() < budget) {
        let t = Instant::now();
        op();
        samples.push(t.elapsed());
    }
    samples.sort();
    Stats { samples }
}

fn show(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

fn secret_path(i: usize) -> String {
    format!("bench/f{:07}/k{}", i / PER_FOLDER, i % PER_FOLDER)
}

/// Writes secrets `from..to` with `threads` writers, each with its own
/// store (as the host's plugin instances are).
fn fill(root: &Path, from: usize, to: usize, threads: usize) {
    let next = AtomicUsize::new(from);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let store = Store::new(root, CheapSealer, 0);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= to {
                        return;
                    }
                    store.put(&secret_path(i), &[b'v'; 64], vec![], None).unwrap();
                }
            });
        }
    });
}

/// Writes `count` more versions of `path`, one after another: the host
/// serializes the writers of one secret, so the store sees one at a time.
fn add_versions(root: &Path, path: &str, count: usize) {
    let store = Store::new(root, CheapSealer, 0);
    for _ in 0..count {
        store.put(path, &[b'v'; 64], vec![], None).unwrap();
    }
}

/// Bytes the files and directories under `dir` take on disk (allocated
/// blocks where the platform says, else apparent sizes), and their count.
fn disk_usage(dir: &Path) -> (u64, u64) {
    let mut bytes = 0;
    let mut inodes = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            inodes += 1;
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                bytes += meta.blocks() * 512;
            }
            #[cfg(not(unix))]
            {
                bytes += meta.len();
            }
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    (bytes, inodes)
}

fn main() {
    let options = options();
    let temp = options
        .dir
        .is_none()
        .then(|| tempfile::Builder::new().prefix("tresor-growth-").tempdir().unwrap());
    let root = options
        .dir
        .clone()
        .unwrap_or_else(|| temp.as_ref().unwrap().path().to_path_buf());
    std::fs::create_dir_all(&root).unwrap();
    println!(
        "data directory: {}, {} writer threads for filling\n",
        root.display(),
        options.threads
    );
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let store = Store::new(&root, CheapSealer, 0);

    println!("## Many secrets (median / p90)\n");
    println!("| secrets | fill time | start + first read | read latest | read version 1 | write new version | write new secret | LIST of 10 | disk per secret |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut filled = 0;
    for &size in &options.secrets {
        let started = Instant::now();
        fill(&root, filled, size, options.threads);
        filled = size;
        let fill_time = started.elapsed();
        let (bytes, _) = disk_usage(&root);

        let t = Instant::now();
        let fresh = Store::new(&root, CheapSealer, 0);
        fresh.get(&secret_path(rng.below(size)), None).unwrap();
        let start = t.elapsed();

        let latest = measure(2000, Duration::from_secs(1), || {
            store.get(&secret_path(rng.below(size)), None).unwrap();
        });
        let given = measure(2000, Duration::from_secs(1), || {
            store.get(&secret_path(rng.below(size)), Some("1")).unwrap();
        });
        let write = measure(200, Duration::from_secs(2), || {
            store
                .put(&secret_path(rng.below(size)), b"new value", vec![], None)
                .unwrap();
        });
        let mut created = 0;
        let create = measure(200, Duration::from_secs(2), || {
            created += 1;
            store
                .put(&format!("new/{size}/{created}"), b"new secret", vec![], None)
                .unwrap();
        });
        let list = measure(500, Duration::from_secs(3), || {
            let folder = rng.below(size / PER_FOLDER);
            let found = store.list(&format!("bench/f{folder:07}/")).unwrap();
            assert_eq!(found.len(), PER_FOLDER);
        });
        println!(
            "| {size} | {} | {} | {} | {} | {} | {} | {} | {} B |",
            show(fill_time),
            show(start),
            latest.cell(),
            given.cell(),
            write.cell(),
            create.cell(),
            list.cell(),
            bytes / size as u64,
        );
    }

    println!("\n## One secret with many versions (median / p90)\n");
    println!("| versions | fill time | read latest | read version 1 | read a middle version | write new version |");
    println!("|---|---|---|---|---|---|");
    let path = "history/one";
    let mut written = 0;
    for &wanted in &options.versions {
        let started = Instant::now();
        add_versions(&root, path, wanted.saturating_sub(written));
        let fill_time = started.elapsed();
        let count = wanted.max(written);
        let latest = measure(2000, Duration::from_secs(1), || {
            store.get(path, None).unwrap();
        });
        let first = measure(2000, Duration::from_secs(1), || {
            store.get(path, Some("1")).unwrap();
        });
        let middle = (count / 2).max(1).to_string();
        let mid = measure(2000, Duration::from_secs(1), || {
            store.get(path, Some(&middle)).unwrap();
        });
        let write = measure(100, Duration::from_secs(2), || {
            store.put(path, b"new value", vec![], None).unwrap();
        });
        written = count + write.samples.len();
        println!(
            "| {count} | {} | {} | {} | {} | {} |",
            show(fill_time),
            latest.cell(),
            first.cell(),
            mid.cell(),
            write.cell()
        );
    }

    if options.keep {
        if let Some(temp) = temp {
            println!("\nkept {}", temp.keep().display());
        }
    }
}
