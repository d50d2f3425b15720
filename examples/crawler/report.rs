//! Output: one JSON line per page, a live progress line on stderr when it
//! is a terminal, and the final summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// What happened to one page.
#[derive(Debug, Clone)]
pub struct Page<'a> {
    pub url: &'a str,
    pub status: Option<u16>,
    pub bytes: u64,
    pub links: usize,
    pub elapsed: Duration,
    /// Where a redirect points (its `Location` resolved against `url`).
    pub redirect: Option<&'a str>,
    /// The error kind and its message.
    pub error: Option<(&'static str, String)>,
}

/// Counters and the JSON-lines sink.
pub struct Report {
    out: Box<dyn Write>,
    start: Instant,
    pages: u64,
    errors: BTreeMap<&'static str, u64>,
    latencies_us: Vec<u64>,
    pub in_flight: usize,
    pub max_in_flight: usize,
    progress: bool,
    last_progress: Instant,
    line: String,
}

impl Report {
    pub fn new(out: Box<dyn Write>, progress: bool) -> Report {
        Report {
            out,
            start: Instant::now(),
            pages: 0,
            errors: BTreeMap::new(),
            latencies_us: Vec::new(),
            in_flight: 0,
            max_in_flight: 0,
            progress,
            last_progress: Instant::now(),
            line: String::with_capacity(256),
        }
    }

    pub fn started(&mut self) {
        self.in_flight += 1;
        self.max_in_flight = self.max_in_flight.max(self.in_flight);
    }

    pub fn finished(&mut self) {
        self.in_flight -= 1;
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Records one page and writes its JSON line.
    pub fn page(&mut self, p: &Page<'_>) -> io::Result<()> {
        self.pages += 1;
        self.latencies_us.push(p.elapsed.as_micros() as u64);
        if let Some((kind, _)) = &p.error {
            *self.errors.entry(kind).or_default() += 1;
        }
        let l = &mut self.line;
        l.clear();
        l.push_str("{\"url\":");
        push_json_str(l, p.url);
        match p.status {
            Some(s) => {
                l.push_str(",\"status\":");
                push_u64(l, s.into());
            }
            None => l.push_str(",\"status\":null"),
        }
        l.push_str(",\"bytes\":");
        push_u64(l, p.bytes);
        l.push_str(",\"links\":");
        push_u64(l, p.links as u64);
        l.push_str(",\"elapsed_ms\":");
        push_ms(l, p.elapsed);
        match p.redirect {
            Some(to) => {
                l.push_str(",\"redirect\":");
                push_json_str(l, to);
            }
            None => l.push_str(",\"redirect\":null"),
        }
        match &p.error {
            Some((kind, msg)) => {
                l.push_str(",\"error\":");
                push_json_str(l, kind);
                l.push_str(",\"message\":");
                push_json_str(l, msg);
            }
            None => l.push_str(",\"error\":null"),
        }
        l.push_str("}\n");
        self.out.write_all(l.as_bytes())?;
        if self.progress && self.last_progress.elapsed() >= Duration::from_millis(200) {
            self.draw_progress();
        }
        Ok(())
    }

    pub fn draw_progress(&mut self) {
        self.last_progress = Instant::now();
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        eprint!(
            "\r\x1b[2Kpages {:>7}  in flight {:>4}  errors {:>5}  {:>9.0} pages/s",
            self.pages,
            self.in_flight,
            self.error_count(),
            self.pages as f64 / secs
        );
    }

    /// Flushes the JSON lines written so far.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Prints the summary on stderr; returns it too.
    pub fn summary(&mut self, interrupted: bool) -> String {
        if self.progress {
            eprint!("\r\x1b[2K");
        }
        let secs = self.start.elapsed().as_secs_f64();
        let mut lat = std::mem::take(&mut self.latencies_us);
        lat.sort_unstable();
        let pct = |q: f64| -> f64 {
            if lat.is_empty() {
                return 0.0;
            }
            let i = ((lat.len() as f64 - 1.0) * q).round() as usize;
            lat[i] as f64 / 1e3
        };
        let mut s = String::new();
        writeln!(
            s,
            "{}crawled {} pages in {:.2} s: {:.0} pages/s",
            if interrupted { "interrupted: " } else { "" },
            self.pages,
            secs,
            self.pages as f64 / secs.max(1e-9)
        )
        .unwrap();
        writeln!(
            s,
            "latency p50 {:.2} ms, p99 {:.2} ms; at most {} requests in flight",
            pct(0.5),
            pct(0.99),
            self.max_in_flight
        )
        .unwrap();
        if self.errors.is_empty() {
            writeln!(s, "errors: none").unwrap();
        } else {
            let parts: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            writeln!(s, "errors: {} ({})", self.error_count(), parts.join(", ")).unwrap();
        }
        eprint!("{s}");
        s
    }

    /// Errors by kind (for the machine-readable summary).
    pub fn errors(&self) -> &BTreeMap<&'static str, u64> {
        &self.errors
    }

    pub fn pages(&self) -> u64 {
        self.pages
    }
}

/// Appends `n` in decimal (what `write!` does, without the formatting
/// machinery: this runs for every page).
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&digits[i..]).expect("ASCII digits"));
}

/// Appends `d` in milliseconds with three decimals, rounded to the
/// microsecond, as `{:.3}` of the milliseconds would print it.
fn push_ms(out: &mut String, d: Duration) {
    let us = (d.as_nanos() + 500) / 1000;
    let us = u64::try_from(us).unwrap_or(u64::MAX);
    push_u64(out, us / 1000);
    let frac = us % 1000;
    out.push('.');
    out.push(char::from(b'0' + (frac / 100) as u8));
    out.push(char::from(b'0' + (frac / 10 % 10) as u8));
    out.push(char::from(b'0' + (frac % 10) as u8));
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    // Runs that need no escaping (all of a typical URL) go in one copy.
    let clean = |b: u8| b >= 0x20 && b != b'"' && b != b'\\';
    let mut rest = s;
    while let Some(i) = rest.bytes().position(|b| !clean(b)) {
        out.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        rest = &rest[i + 1..];
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c => write!(out, "\\u{:04x}", c).unwrap(),
        }
    }
    out.push_str(rest);
    out.push('"');
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        super::push_json_str(&mut s, "a\"b\\c\n\u{1}");
        assert_eq!(s, r#""a\"b\\c\n\u0001""#);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v, "a\"b\\c\n\u{1}");
        let mut s = String::new();
        super::push_json_str(&mut s, "plain ünïcode \u{1f}end");
        assert_eq!(s, r#""plain ünïcode \u001fend""#);
    }

    #[test]
    fn numbers_as_write_prints_them() {
        use std::fmt::Write as _;
        use std::time::Duration;
        for n in [0, 7, 10, 99, 100, 12345, u64::MAX] {
            let mut s = String::new();
            super::push_u64(&mut s, n);
            assert_eq!(s, n.to_string());
        }
        for ns in [
            0,
            499,
            501,
            693_000,
            2_991_499,
            2_991_501,
            1_234_567_890_123,
        ] {
            let d = Duration::from_nanos(ns);
            let (mut got, mut want) = (String::new(), String::new());
            super::push_ms(&mut got, d);
            write!(want, "{:.3}", ns as f64 / 1e6).unwrap();
            assert_eq!(got, want, "{ns} ns");
        }
    }
}
