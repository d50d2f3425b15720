//! Output: one JSON line per page, a live progress line on stderr when it
//! is a terminal, and the final summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// What happened to one page.
#[derive(Debug, Clone)]
pub struct Page {
    pub url: String,
    pub status: Option<u16>,
    pub bytes: u64,
    pub links: usize,
    pub elapsed: Duration,
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
    pub fn page(&mut self, p: &Page) -> io::Result<()> {
        self.pages += 1;
        self.latencies_us.push(p.elapsed.as_micros() as u64);
        if let Some((kind, _)) = &p.error {
            *self.errors.entry(kind).or_default() += 1;
        }
        let l = &mut self.line;
        l.clear();
        l.push_str("{\"url\":");
        push_json_str(l, &p.url);
        match p.status {
            Some(s) => write!(l, ",\"status\":{s}").unwrap(),
            None => l.push_str(",\"status\":null"),
        }
        write!(
            l,
            ",\"bytes\":{},\"links\":{},\"elapsed_ms\":{:.3}",
            p.bytes,
            p.links,
            p.elapsed.as_secs_f64() * 1e3
        )
        .unwrap();
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

    /// Flushes the output and prints the summary on stderr; returns it too.
    pub fn finish(&mut self, interrupted: bool) -> io::Result<String> {
        self.out.flush()?;
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
        Ok(s)
    }

    /// Errors by kind (for the machine-readable summary).
    pub fn errors(&self) -> &BTreeMap<&'static str, u64> {
        &self.errors
    }

    pub fn pages(&self) -> u64 {
        self.pages
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
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
    }
}
