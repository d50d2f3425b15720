//! A small robots.txt reader: the group for our user agent (or `*`), with
//! `Allow`/`Disallow` prefix rules, `*` wildcards and `$` anchors, the
//! longest matching rule winning (Allow on a tie), as RFC 9309 says.

/// The rules that apply to one user agent.
#[derive(Debug, Default, Clone)]
pub struct Robots {
    rules: Vec<(bool, String)>,
}

impl Robots {
    /// Parses `text` for `agent` (matched case-insensitively as a substring
    /// of our product token, falling back to the `*` group).
    pub fn parse(text: &str, agent: &str) -> Robots {
        let agent = agent.to_ascii_lowercase();
        let token = agent.split('/').next().unwrap_or("").to_owned();
        let mut specific: Vec<(bool, String)> = Vec::new();
        let mut star: Vec<(bool, String)> = Vec::new();
        let mut have_specific = false;
        let mut group_agents: Vec<String> = Vec::new();
        let mut in_rules = false;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            match key.as_str() {
                "user-agent" => {
                    if in_rules {
                        group_agents.clear();
                        in_rules = false;
                    }
                    group_agents.push(value.to_ascii_lowercase());
                }
                "allow" | "disallow" => {
                    in_rules = true;
                    if value.is_empty() {
                        continue;
                    }
                    let rule = (key == "allow", value.to_owned());
                    for a in &group_agents {
                        if a == "*" {
                            star.push(rule.clone());
                        } else if !token.is_empty()
                            && (a.contains(&token) || token.contains(a.as_str()))
                        {
                            have_specific = true;
                            specific.push(rule.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        Robots {
            rules: if have_specific { specific } else { star },
        }
    }

    /// Rules that disallow everything: what a crawler must assume when a
    /// site's robots.txt is unreachable (a 5xx status or a network error,
    /// RFC 9309 section 2.3.1.4).
    pub fn disallow_all() -> Robots {
        Robots {
            rules: vec![(false, "/".to_owned())],
        }
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
        let none = Robots::disallow_all();
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
}
