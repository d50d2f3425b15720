//! The crawler example against its built-in demo site, run as a user would:
//! as a separate process.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::Command;

pub fn crawler_bin() -> PathBuf {
    example_bin("crawler")
}

/// The example `name` of the build these tests belong to (`cargo test`
/// builds the examples).
pub fn example_bin(name: &str) -> PathBuf {
    // target/<profile>/deps/it-<hash> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        bin.exists(),
        "{} not built: cargo test builds examples",
        bin.display()
    );
    bin
}

struct Line {
    path: String,
    status: Option<u64>,
    redirect: Option<String>,
    error: Option<String>,
}

fn crawl(pages: usize, concurrency: usize, extra: &[&str]) -> (Vec<Line>, serde_json::Value) {
    let dir = std::env::temp_dir().join(format!(
        "sylvan-crawl-{}-{pages}-{concurrency}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.jsonl");
    let stats = dir.join("stats.json");
    let status = Command::new(crawler_bin())
        .args([
            "--demo-pages",
            &pages.to_string(),
            "--concurrency",
            &concurrency.to_string(),
        ])
        .args([
            "--timeout",
            "0.5",
            "--retries",
            "0",
            "--demo-slow-ms",
            "3000",
            "--no-progress",
        ])
        .arg("-o")
        .arg(&out)
        .arg("--stats")
        .arg(&stats)
        .args(extra)
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&out).unwrap();
    let lines = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("each line is JSON");
            let url = url::Url::parse(v["url"].as_str().unwrap()).unwrap();
            Line {
                path: url.path().to_owned(),
                status: v["status"].as_u64(),
                redirect: v["redirect"]
                    .as_str()
                    .map(|r| url::Url::parse(r).unwrap().path().to_owned()),
                error: v["error"].as_str().map(str::to_owned),
            }
        })
        .collect();
    let stats: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (lines, stats)
}

#[test]
fn crawls_the_demo_site_exactly_once_per_page_and_counts_errors_by_kind() {
    let (lines, stats) = crawl(300, 8, &[]);
    let mut paths = HashSet::new();
    for l in &lines {
        assert!(paths.insert(l.path.clone()), "{} fetched twice", l.path);
    }
    // Every generated page, the root, the special pages linked from pages
    // 1..=11, the redirect targets and the 404s of pages 99, 199, 299.
    let mut want: HashSet<String> = (0..300).map(|i| format!("/page/{i}")).collect();
    want.insert("/".into());
    for p in [
        "/slow/1",
        "/slow/2",
        "/never",
        "/redirect",
        "/landing",
        "/loop/a",
        "/loop/b",
        "/bad-utf8",
        "/liar",
        "/reset",
        "/huge",
        "/bomb",
        "/private/secret",
        "/missing/99",
        "/missing/199",
        "/missing/299",
    ] {
        want.insert(p.into());
    }
    assert_eq!(paths, want);

    let by_path: BTreeMap<&str, &Line> = lines.iter().map(|l| (l.path.as_str(), l)).collect();
    let err = |p: &str| by_path[p].error.as_deref();
    assert_eq!(err("/slow/1"), Some("timeout"), "the slow page times out");
    assert_eq!(err("/never"), Some("timeout"));
    // Redirects are followed by the crawler, each hop a page of its own.
    let redirect = |p: &str| (by_path[p].status, by_path[p].redirect.as_deref());
    assert_eq!(redirect("/redirect"), (Some(301), Some("/landing")));
    assert_eq!(err("/redirect"), None);
    assert_eq!(by_path["/landing"].status, Some(200));
    assert_eq!(redirect("/loop/a"), (Some(301), Some("/loop/b")));
    assert_eq!(err("/loop/a"), None);
    assert_eq!(err("/loop/b"), Some("redirect"), "a redirect loop ends");
    assert_eq!(err("/huge"), Some("too_large"));
    assert_eq!(
        err("/bomb"),
        Some("too_large"),
        "decompressed size is bounded"
    );
    assert_eq!(err("/private/secret"), Some("robots"));
    assert_eq!(err("/missing/99"), Some("status"));
    assert_eq!(by_path["/missing/99"].status, Some(404));
    assert!(err("/liar").is_some() && err("/reset").is_some());
    assert_eq!(err("/bad-utf8"), None, "invalid UTF-8 survives");
    assert!(by_path["/page/12"].error.is_none());

    let errors = &stats["errors"];
    assert_eq!(errors["timeout"], 3);
    assert_eq!(errors["status"], 3);
    assert_eq!(errors["too_large"], 2);
    assert_eq!(errors["redirect"], 1);
    assert_eq!(errors["robots"], 1);
    assert_eq!(stats["pages"], want.len());
}

#[test]
fn concurrency_never_exceeds_the_pool_size() {
    for c in [1, 3] {
        let (lines, stats) = crawl(60, c, &["--no-robots"]);
        assert!(!lines.is_empty());
        let max = stats["max_in_flight"].as_u64().unwrap();
        assert!(
            max >= 1 && max <= c as u64,
            "max in flight {max} with a pool of {c}"
        );
    }
}

#[test]
fn max_redirects_bounds_the_hops_followed_from_a_page() {
    let (lines, stats) = crawl(20, 4, &["--max-redirects", "0"]);
    let by_path: BTreeMap<&str, &Line> = lines.iter().map(|l| (l.path.as_str(), l)).collect();
    let r = by_path["/redirect"];
    assert_eq!(r.status, Some(301));
    assert_eq!(
        r.redirect.as_deref(),
        Some("/landing"),
        "the target is shown"
    );
    assert_eq!(r.error.as_deref(), Some("redirect"));
    assert!(!by_path.contains_key("/landing"), "and not fetched");
    assert!(!by_path.contains_key("/loop/b"));
    assert_eq!(stats["errors"]["redirect"], 2);
}

#[test]
fn ctrl_c_stops_the_crawl_with_a_summary_and_status_130() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;
    let dir = std::env::temp_dir().join(format!("sylvan-crawl-int-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.jsonl");
    // The page that never answers keeps this crawl going for 10 s at least.
    let mut child = Command::new(crawler_bin())
        .args(["--demo-pages", "300", "--timeout", "10", "--no-progress"])
        .arg("-o")
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The crawler names the demo site once its Ctrl-C handler is in place.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    assert!(first.starts_with("demo site with"), "{first:?}");
    let sent = std::time::Instant::now();
    // SAFETY: kill(2) on our own child, which has not been waited for.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let err = first
        + &{
            let mut rest = String::new();
            err.read_to_string(&mut rest).unwrap();
            rest
        };
    let status = child.wait().unwrap();
    assert!(
        sent.elapsed() < std::time::Duration::from_secs(8),
        "stopped before the slow page's timeout"
    );
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted: crawled"), "{err}");
    // Whatever was done before Ctrl-C is written whole.
    let text = std::fs::read_to_string(&out).unwrap();
    for line in text.lines() {
        let _: serde_json::Value = serde_json::from_str(line).expect("whole JSON lines");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
