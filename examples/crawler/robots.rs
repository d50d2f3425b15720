//! A small robots.txt reader: the group for our user agent (or `*`), with
//! `Allow`/`Disallow` prefix rules, `*` wildcards and `$` anchors, the
//! longest matching rule winning (Allow on a tie), as RFC 9309 says.

/// The rules that apply to one user agent.
#[derive(Debug, Default, Clone)]
pub struct Robots {
    rules: Vec<(bool, String)>,
    /// Why everything is disallowed, when the robots.txt could not be
    /// fetched: the message a denied page reports.
    unreachable: Option<String>,
}

impl Robots {
    /// Parses `text` for `agent`: the groups whose `User-agent` is our
    /// product token (the part of `agent` before any `/`, matched without
    /// regard to case, RFC 9309 2.2.1), else the `*` group. A UTF-8 byte
    /// order mark and CR, LF or CRLF line ends are accepted.
    pub fn parse(text: &str, agent: &str) -> Robots {
        let token = product_token(agent);
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut specific: Vec<(bool, String)> = Vec::new();
        let mut star: Vec<(bool, String)> = Vec::new();
        let mut have_specific = false;
        // Of the group being read: whether it names us, and `*`.
        let (mut for_us, mut for_star) = (false, false);
        let mut in_rules = false;
        for line in text.split(['\n', '\r']) {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            match key.as_str() {
                "user-agent" => {
                    if in_rules {
                        (for_us, for_star) = (false, false);
                        in_rules = false;
                    }
                    if value == "*" {
                        for_star = true;
                    } else if !token.is_empty() && product_token(value) == token {
                        // Ours, even if it turns out to hold no rule (an
                        // empty `Disallow:` allows everything).
                        for_us = true;
                        have_specific = true;
                    }
                }
                "allow" | "disallow" => {
                    in_rules = true;
                    if value.is_empty() {
                        continue;
                    }
                    let rule = (key == "allow", encode_pattern(value));
                    if for_star {
                        star.push(rule.clone());
                    }
                    if for_us {
                        specific.push(rule);
                    }
                }
                _ => {}
            }
        }
        Robots {
            rules: if have_specific { specific } else { star },
            unreachable: None,
        }
    }

    /// Rules that disallow everything: what a crawler must assume when a
    /// site's robots.txt is unreachable (a 5xx status or a network error,
    /// RFC 9309 section 2.3.1.4). `why` is the message of each page
    /// denied so (see [`denial`](Self::denial)).
    pub fn disallow_all(why: String) -> Robots {
        Robots {
            rules: vec![(false, "/".to_owned())],
            unreachable: Some(why),
        }
    }

    /// The error kind and message of a page these rules deny: kind
    /// "robots", with why when the robots.txt could not be fetched.
    pub fn denial(&self) -> (&'static str, String) {
        let why = self.unreachable.as_deref();
        (
            "robots",
            why.unwrap_or("disallowed by robots.txt").to_owned(),
        )
    }

    /// Whether `path` (with its query) may be fetched.
    pub fn allowed(&self, path: &str) -> bool {
        let mut best: Option<(usize, bool)> = None;
        for (allow, pattern) in &self.rules {
            if matches(pattern, path) {
                let len = pattern.len();
                best = match best {
                    Some((l, a)) if l > len || (l == len && a) => Some((l, a)),
                    _ => Some((len, *allow)),
                };
            }
        }
        best.is_none_or(|(_, allow)| allow)
    }
}

/// The product token of a user agent: what comes before any `/`,
/// lowercased.
fn product_token(agent: &str) -> String {
    agent
        .split('/')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A rule's path as the crawler spells URLs (RFC 9309 2.2.2): bytes outside
/// US-ASCII (and controls, space, `"<>`{}`) percent-encoded, escapes of
/// unreserved characters decoded and the others' in upper case, so that
/// `/ünï` matches the `/%C3%BCn%C3%AF` of a parsed URL and `/%7Ejoe/` the
/// `/~joe/` of a normalized one.
fn encode_pattern(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            // As the crawler normalizes URLs (links::page): unreserved
            // characters decoded, the others' hex digits upper case.
            let hex = &value[i + 1..i + 3];
            let v = u8::from_str_radix(hex, 16).expect("two hex digits");
            if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                out.push(v as char);
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
        } else if b.is_ascii() && !b.is_ascii_control() && !b" \"<>`{}".contains(&b) {
            out.push(b as char);
            i += 1;
        } else {
            // What the URL parser escapes in a path (non-ASCII bytes,
            // controls, space and a few more) is escaped here too.
            out.push_str(&format!("%{b:02X}"));
            i += 1;
        }
    }
    out
}

/// Prefix match with `*` (any run) and a trailing `$` (end anchor).
fn matches(pattern: &str, path: &str) -> bool {
    let (pattern, anchored) = match pattern.strip_suffix('$') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut pos = 0;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            if !path.starts_with(part) {
                return false;
            }
            pos = part.len();
        } else if let Some(at) = path[pos..].find(part) {
            pos += at + part.len();
        } else {
            return false;
        }
    }
    if anchored {
        let last = parts.last().copied().unwrap_or("");
        return path.len() == pos || (parts.len() > 1 && path.ends_with(last));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disallow_all_disallows_every_path_and_default_allows_all() {
        let none = Robots::disallow_all("robots.txt unreachable".to_owned());
        assert_eq!(
            none.denial(),
            ("robots", "robots.txt unreachable".to_owned())
        );
        for path in ["/", "/index.html", "/a/b?c=d"] {
            assert!(!none.allowed(path), "{path}");
            assert!(Robots::default().allowed(path), "{path}");
        }
    }

    #[test]
    fn groups_and_longest_match() {
        let txt = "User-agent: other\nDisallow: /\n\nUser-agent: *\nDisallow: /private\nAllow: /private/ok\nDisallow: /*.pdf$\n";
        let r = Robots::parse(txt, "sylvan-crawler/0.1");
        assert!(r.allowed("/"));
        assert!(!r.allowed("/private/x"));
        assert!(r.allowed("/private/ok/1"));
        assert!(!r.allowed("/a/b.pdf"));
        assert!(r.allowed("/a/b.pdf?x"));
        let r = Robots::parse(
            "User-agent: sylvan-crawler\nDisallow: /no\n",
            "sylvan-crawler/0.1",
        );
        assert!(!r.allowed("/no/1"));
    }

    #[test]
    fn our_group_with_an_empty_disallow_allows_everything() {
        let txt = "User-agent: sylvan-crawler\nDisallow:\n\nUser-agent: *\nDisallow: /\n";
        assert!(Robots::parse(txt, "sylvan-crawler/0.1").allowed("/x"));
    }

    #[test]
    fn user_agents_match_by_product_token_not_substring() {
        for other in ["crawler", "s", "sylvan-crawler-pro"] {
            let txt = format!("User-agent: {other}\nDisallow: /\n");
            assert!(
                Robots::parse(&txt, "sylvan-crawler/0.1").allowed("/x"),
                "{other}"
            );
        }
        let txt = "User-agent: SYLVAN-Crawler/2.0\nDisallow: /\n";
        assert!(!Robots::parse(txt, "sylvan-crawler/0.1").allowed("/x"));
    }

    #[test]
    fn non_ascii_rules_match_percent_encoded_paths() {
        let r = Robots::parse("User-agent: *\nDisallow: /ünï\nDisallow: /a%2fb\n", "x/1");
        assert!(!r.allowed("/%C3%BCn%C3%AF/page"));
        assert!(!r.allowed("/a%2Fb"));
        assert!(r.allowed("/un"));
    }

    #[test]
    fn escaped_unreserved_characters_and_spaces_match_normalized_paths() {
        let r = Robots::parse(
            "User-agent: *\nDisallow: /%7ejoe/\nDisallow: /foo/bar/%62%61%7A\nDisallow: /a b\n",
            "x/1",
        );
        assert!(!r.allowed("/~joe/x"));
        assert!(!r.allowed("/foo/bar/baz"));
        assert!(!r.allowed("/a%20b"));
        assert!(r.allowed("/foo/bar/ba"));
    }

    #[test]
    fn bom_and_cr_line_ends_are_read() {
        let r = Robots::parse("\u{feff}User-agent: *\rDisallow: /no\r", "x/1");
        assert!(!r.allowed("/no"));
        let r = Robots::parse("\u{feff}User-agent: *\r\nDisallow: /no\r\n", "x/1");
        assert!(!r.allowed("/no"));
    }
}
