//! Link extraction with `html5gum` (a WHATWG-conformant HTML tokenizer, no
//! regular expressions over HTML) and URL normalisation with `url`.
//!
//! The tokenizer drives a small [`Emitter`] of our own that only looks at
//! start tags: it keeps no text, comments or doctypes, reports no parse
//! errors, and reuses its buffers, so a page costs a few microseconds.
//! Tag and attribute names arrive lowercased and attribute values with their
//! character references (`&amp;`) decoded, as the HTML standard says.

use std::borrow::Cow;
use std::convert::Infallible;

use encoding_rs::{Encoding, UTF_8};
use html5gum::{Emitter, Error, Reader, State, Tokenizer, naive_next_state};
use url::Url;

/// The page as the tokenizer's input. html5gum's own reader for byte
/// slices calls `jetscii` for every run of text it skips, whose set-up cost
/// dominated the whole tokenizer on short runs: this one takes the set of
/// bytes that end the run as a bitmask and finds the first in one pass.
struct PageReader<'a>(&'a [u8]);

impl Reader for PageReader<'_> {
    type Error = Infallible;

    #[inline(always)]
    fn read_byte(&mut self) -> Result<Option<u8>, Infallible> {
        Ok(self.0.split_first().map(|(&b, rest)| {
            self.0 = rest;
            b
        }))
    }

    #[inline(always)]
    fn try_read_string(&mut self, s: &[u8], case_sensitive: bool) -> Result<bool, Infallible> {
        match self.0.get(..s.len()) {
            Some(next) if next == s || (!case_sensitive && next.eq_ignore_ascii_case(s)) => {
                self.0 = &self.0[s.len()..];
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    #[inline(always)]
    fn read_until<'b>(
        &'b mut self,
        needle: &[u8],
        _: &'b mut [u8; 4],
    ) -> Result<Option<&'b [u8]>, Infallible> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let at = find_stop(self.0, needle).unwrap_or(self.0.len());
        // A stop byte is returned on its own.
        let (run, rest) = self.0.split_at(at.max(1));
        self.0 = rest;
        Ok(Some(run))
    }
}

/// Where the first byte of `needle` is in `hay`. Most runs end within a
/// few bytes (the new line between two tags, a short link text, any name),
/// so the first [`SHORT`] bytes are checked one by one against a bit set of
/// the needle; past them, small sets (the text and attribute value states:
/// `<` or a quote, `&`, NUL, CR) are searched with `memchr`, three bytes per
/// pass, each pass only over what the earlier ones left, and larger sets
/// (names, which end at white space, `/`, `>` ...) byte by byte.
#[inline(always)]
fn find_stop(hay: &[u8], needle: &[u8]) -> Option<usize> {
    const SHORT: usize = 8;
    let mut set = [0u64; 4];
    for &b in needle {
        set[usize::from(b >> 6)] |= 1 << (b & 63);
    }
    let stop = |b: &u8| set[usize::from(b >> 6)] & (1 << (b & 63)) != 0;
    let head = hay.len().min(SHORT);
    if let Some(i) = hay[..head].iter().position(stop) {
        return Some(i);
    }
    let rest = &hay[head..];
    if rest.is_empty() {
        return None;
    }
    if needle.len() > 6 {
        return rest.iter().position(stop).map(|i| i + head);
    }
    let mut end = rest.len();
    let mut found = false;
    for group in needle.chunks(3) {
        let part = &rest[..end];
        let hit = match *group {
            [a] => memchr::memchr(a, part),
            [a, b] => memchr::memchr2(a, b, part),
            [a, b, c] => memchr::memchr3(a, b, c, part),
            _ => None,
        };
        if let Some(i) = hit {
            end = i;
            found = true;
        }
    }
    found.then_some(end + head)
}

/// Which attribute of the current start tag holds a URL we want.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Not a tag we care about.
    Nothing,
    /// `<a href>`, `<area href>`: a link.
    LinkHref,
    /// `<frame src>`, `<iframe src>`: a link.
    FrameSrc,
    /// `<base href>`, the first one only.
    BaseHref,
}

impl Want {
    fn attribute(self) -> &'static [u8] {
        match self {
            Want::LinkHref | Want::BaseHref => b"href",
            Want::FrameSrc => b"src",
            Want::Nothing => b"",
        }
    }
}

/// State of the current attribute.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Attr {
    /// Its name is still being read.
    Name,
    /// It is the wanted attribute and its value goes to `value`.
    Capture,
    /// Not wanted (or a duplicate: the first occurrence wins).
    Skip,
}

/// Collects the URLs of one page as the tokenizer reports start tags.
struct LinkEmitter<'a> {
    page: &'a Url,
    /// The page's encoding when not UTF-8: link queries are
    /// percent-encoded in it, as browsers do (paths are always UTF-8).
    query_encoding: Option<&'static Encoding>,
    /// The page's `<base href>`, once seen.
    base: Option<Url>,
    base_seen: bool,
    out: &'a mut Vec<Url>,
    tag: Vec<u8>,
    is_start_tag: bool,
    /// Whether `want` is set for the current tag (its name is complete).
    tag_known: bool,
    /// For the tokenizer's raw-text states (`<script>`, `<style>`, ...).
    last_start_tag: Vec<u8>,
    want: Want,
    attr: Attr,
    attr_name: Vec<u8>,
    /// The wanted attribute's value, complete once `have_value`.
    value: Vec<u8>,
    have_value: bool,
    /// The current tag ends with `/>`.
    self_closing: bool,
    /// Open elements that change the namespace, innermost last (see
    /// [`Space`]); at most [`MAX_SPACES`] deep.
    spaces: Vec<Space>,
}

/// An open element that changes how the tokenizer must read what follows:
/// a tokenizer-only crawler keeps the little of the tree builder's stack
/// that decides whether `<![CDATA[` opens a CDATA section (in SVG and
/// MathML) or a bogus comment (in HTML), and whether `<style>` or
/// `<script>` switch to raw text (in HTML only).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Space {
    /// `<svg>` or `<math>`: foreign content.
    Foreign,
    /// An HTML integration point inside foreign content (`foreignObject`,
    /// SVG `desc` and `title`, MathML text elements): HTML again.
    Html,
}

/// Deeper nesting (a hostile page) is counted as the innermost level.
const MAX_SPACES: usize = 64;

/// Start tags that end foreign content (the HTML standard's "breakout"
/// list, for the rules for parsing tokens in foreign content).
fn breaks_out(tag: &[u8]) -> bool {
    matches!(
        tag,
        b"b" | b"big"
            | b"blockquote"
            | b"body"
            | b"br"
            | b"center"
            | b"code"
            | b"dd"
            | b"div"
            | b"dl"
            | b"dt"
            | b"em"
            | b"embed"
            | b"h1"
            | b"h2"
            | b"h3"
            | b"h4"
            | b"h5"
            | b"h6"
            | b"head"
            | b"hr"
            | b"i"
            | b"img"
            | b"li"
            | b"listing"
            | b"menu"
            | b"meta"
            | b"nobr"
            | b"ol"
            | b"p"
            | b"pre"
            | b"ruby"
            | b"s"
            | b"small"
            | b"span"
            | b"strong"
            | b"strike"
            | b"sub"
            | b"sup"
            | b"table"
            | b"tt"
            | b"u"
            | b"ul"
            | b"var"
    )
}

/// Elements inside foreign content whose contents are HTML.
fn integration_point(tag: &[u8]) -> bool {
    matches!(
        tag,
        b"foreignobject" | b"desc" | b"title" | b"mi" | b"mo" | b"mn" | b"ms" | b"mtext"
    )
}

impl<'a> LinkEmitter<'a> {
    fn new(page: &'a Url, out: &'a mut Vec<Url>) -> LinkEmitter<'a> {
        LinkEmitter {
            page,
            query_encoding: None,
            base: None,
            base_seen: false,
            out,
            tag: Vec::with_capacity(16),
            is_start_tag: false,
            tag_known: false,
            last_start_tag: Vec::with_capacity(16),
            want: Want::Nothing,
            attr: Attr::Skip,
            attr_name: Vec::with_capacity(16),
            value: Vec::with_capacity(128),
            have_value: false,
            self_closing: false,
            spaces: Vec::new(),
        }
    }

    fn in_foreign(&self) -> bool {
        self.spaces.last() == Some(&Space::Foreign)
    }

    /// Keeps `spaces` in step with the current tag, complete: a start tag
    /// (`start`) or an end tag. True when a start tag opened a space (it is
    /// then a foreign element, never one whose contents are raw text: SVG's
    /// `title` is not HTML's).
    fn track_space(&mut self, start: bool) -> bool {
        let foreign = self.in_foreign();
        let tag = self.tag.as_slice();
        let space = match tag {
            b"svg" | b"math" => Some(Space::Foreign),
            t if integration_point(t) => Some(Space::Html),
            _ => None,
        };
        if !start {
            if space.is_some() && self.spaces.last() == space.as_ref() {
                self.spaces.pop();
            }
            return false;
        }
        if foreign && breaks_out(tag) {
            // Back to HTML: foreign elements up to the nearest integration
            // point are closed.
            while self.spaces.last() == Some(&Space::Foreign) {
                self.spaces.pop();
            }
            return false;
        }
        // An integration point opens HTML only inside foreign content.
        match space.filter(|&s| s == Space::Foreign || foreign) {
            Some(space) => {
                if !self.self_closing && self.spaces.len() < MAX_SPACES {
                    self.spaces.push(space);
                }
                true
            }
            None => false,
        }
    }

    /// The current attribute ended: if it was the wanted one, its value is
    /// final (later duplicates are ignored, as by browsers).
    fn end_attribute(&mut self) {
        match self.attr {
            Attr::Capture => self.have_value = true,
            // A wanted attribute without a value (`<a href>`): empty.
            Attr::Name if self.attr_name == self.want.attribute() => {
                self.value.clear();
                self.have_value = true;
            }
            _ => {}
        }
        self.attr = Attr::Skip;
    }

    /// A start tag is complete: use its URL, if it has one we want.
    fn finish_start_tag(&mut self) {
        if !self.have_value {
            return;
        }
        let raw = String::from_utf8_lossy(&self.value);
        let base = self.base.as_ref().unwrap_or(self.page);
        if self.want == Want::BaseHref {
            self.base_seen = true;
            if let Ok(u) = base.join(raw.trim()) {
                self.base = Some(u);
            }
        } else if let Some(u) = normalize(base, &raw, self.query_encoding) {
            self.out.push(u);
        }
    }
}

impl Emitter for LinkEmitter<'_> {
    type Token = Infallible;

    fn should_emit_errors(&mut self) -> bool {
        false
    }

    fn set_last_start_tag(&mut self, last_start_tag: Option<&[u8]>) {
        self.last_start_tag.clear();
        self.last_start_tag
            .extend_from_slice(last_start_tag.unwrap_or_default());
    }

    fn emit_eof(&mut self) {}

    fn emit_error(&mut self, _: Error) {}

    fn pop_token(&mut self) -> Option<Infallible> {
        None
    }

    fn emit_string(&mut self, _: &[u8]) {}

    fn init_start_tag(&mut self) {
        self.tag.clear();
        self.is_start_tag = true;
        self.self_closing = false;
        self.tag_known = false;
        self.want = Want::Nothing;
        self.attr = Attr::Skip;
        self.have_value = false;
    }

    fn init_end_tag(&mut self) {
        self.tag.clear();
        self.is_start_tag = false;
        self.want = Want::Nothing;
        self.attr = Attr::Skip;
    }

    fn init_comment(&mut self) {}

    fn emit_current_tag(&mut self) -> Option<State> {
        self.end_attribute();
        if !self.is_start_tag {
            self.track_space(false);
            self.last_start_tag.clear();
            return None;
        }
        self.finish_start_tag();
        let opened = self.track_space(true);
        // The name is cleared when the next tag starts: swap, not copy.
        std::mem::swap(&mut self.last_start_tag, &mut self.tag);
        if opened || self.in_foreign() {
            // SVG's `<style>` and `<script>` hold markup (or CDATA), not
            // raw text.
            return None;
        }
        // Switch to raw text after `<script>`, `<style>`, `<textarea>` ...
        // so that their contents are not taken for tags. `noframes` is raw
        // text for browsers too; html5gum 0.8's table spells it `noframe`.
        match self.last_start_tag.as_slice() {
            b"noframes" => Some(State::RawText),
            name => naive_next_state(name),
        }
    }

    fn emit_current_comment(&mut self) {}

    fn emit_current_doctype(&mut self) {}

    fn set_self_closing(&mut self) {
        self.self_closing = true;
    }

    fn set_force_quirks(&mut self) {}

    fn push_tag_name(&mut self, s: &[u8]) {
        self.tag.extend_from_slice(s);
    }

    fn push_comment(&mut self, _: &[u8]) {}

    fn push_doctype_name(&mut self, _: &[u8]) {}

    fn init_doctype(&mut self) {}

    fn init_attribute(&mut self) {
        self.end_attribute();
        if !self.is_start_tag {
            return;
        }
        if !self.tag_known {
            // First attribute of this tag: the tag name is complete.
            self.tag_known = true;
            self.want = match self.tag.as_slice() {
                b"a" | b"area" => Want::LinkHref,
                b"frame" | b"iframe" => Want::FrameSrc,
                b"base" if !self.base_seen => Want::BaseHref,
                _ => Want::Nothing,
            };
        }
        self.attr_name.clear();
        self.attr = if self.want == Want::Nothing || self.have_value {
            Attr::Skip
        } else {
            Attr::Name
        };
    }

    fn push_attribute_name(&mut self, s: &[u8]) {
        if self.attr == Attr::Name {
            self.attr_name.extend_from_slice(s);
        }
    }

    fn push_attribute_value(&mut self, s: &[u8]) {
        if self.attr == Attr::Name {
            if self.attr_name == self.want.attribute() {
                self.value.clear();
                self.attr = Attr::Capture;
            } else {
                self.attr = Attr::Skip;
            }
        }
        if self.attr == Attr::Capture {
            self.value.extend_from_slice(s);
        }
    }

    fn set_doctype_public_identifier(&mut self, _: &[u8]) {}

    fn set_doctype_system_identifier(&mut self, _: &[u8]) {}

    fn push_doctype_public_identifier(&mut self, _: &[u8]) {}

    fn push_doctype_system_identifier(&mut self, _: &[u8]) {}

    fn current_is_appropriate_end_tag_token(&mut self) -> bool {
        !self.is_start_tag && !self.last_start_tag.is_empty() && self.last_start_tag == self.tag
    }

    fn adjusted_current_node_present_but_not_in_html_namespace(&mut self) -> bool {
        self.in_foreign()
    }
}

/// Collects the absolute http(s) URLs that `body` links to (`a[href]`,
/// `area[href]`, `frame[src]`, `iframe[src]`), resolved against `base` (or
/// the page's first `<base href>`, for the links after it), with fragments
/// removed. Invalid UTF-8 and broken markup are tolerated: the tokenizer
/// recovers as browsers do.
///
/// `declared` is the encoding the Content-Type named. The page's encoding
/// is chosen as browsers choose it: a byte order mark, else `declared`,
/// else a `<meta charset>` (or `http-equiv`
/// Content-Type) in the first 1024 bytes, else UTF-8. A page in another
/// encoding is decoded first (html5gum reads UTF-8), so that `caf\xE9` in
/// an ISO-8859-1 page is the link `/caf%C3%A9`.
pub fn extract(
    base: &Url,
    body: &[u8],
    declared: Option<&'static Encoding>,
    out: &mut Vec<Url>,
) -> Result<(), String> {
    let encoding = Encoding::for_bom(body)
        .map(|(e, _)| e)
        .or(declared)
        .or_else(|| meta_charset(body))
        .unwrap_or(UTF_8);
    if encoding == UTF_8 {
        return tokenize(LinkEmitter::new(base, out), body);
    }
    // `decode` drops a byte order mark and replaces malformed sequences.
    let (text, _, _) = encoding.decode(body);
    let mut emitter = LinkEmitter::new(base, out);
    emitter.query_encoding = Some(encoding.output_encoding());
    tokenize(emitter, text.as_bytes())
}

fn tokenize(emitter: LinkEmitter<'_>, body: &[u8]) -> Result<(), String> {
    // Reading from a byte slice cannot fail, and the emitter makes no
    // tokens: the first `next` runs the tokenizer to the end.
    if let Some(Ok(never) | Err(never)) =
        Tokenizer::new_with_emitter(PageReader(body), emitter).next()
    {
        match never {}
    }
    Ok(())
}

/// `raw` resolved against `base`: only http and https, no fragment. On a
/// page in `query_encoding` (UTF-8 when `None`) its query is
/// percent-encoded in that encoding.
fn normalize(base: &Url, raw: &str, query_encoding: Option<&'static Encoding>) -> Option<Url> {
    let raw = raw.trim();
    if raw.is_empty() || raw.starts_with('#') {
        return None;
    }
    // The closure's signature spelled out, so that it is higher-ranked
    // over the input's lifetime (as `encoding_override` needs).
    fn hr<F: Fn(&str) -> Cow<'_, [u8]>>(f: F) -> F {
        f
    }
    let encode = hr(|s| match query_encoding {
        Some(e) => e.encode(s).0,
        None => Cow::Borrowed(s.as_bytes()),
    });
    let options = Url::options().base_url(Some(base));
    let options = match query_encoding {
        Some(_) => options.encoding_override(Some(&encode)),
        None => options,
    };
    page(options.parse(raw).ok()?)
}

/// The encoding named by the `charset` parameter of a Content-Type value,
/// if the Encoding Standard knows the label.
pub fn charset_param(content_type: &[u8]) -> Option<&'static Encoding> {
    let at = content_type
        .windows(8)
        .position(|w| w.eq_ignore_ascii_case(b"charset="))
        .map(|i| i + 8)?;
    let rest = &content_type[at..];
    let rest = rest.strip_prefix(b"\"").unwrap_or(rest);
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'"' | b';' | b' ' | b'\t'))
        .unwrap_or(rest.len());
    Encoding::for_label(&rest[..end])
}

/// The encoding a `<meta>` in the first 1024 bytes declares (the HTML
/// standard's prescan, simplified: a `charset` attribute, or `charset=`
/// inside a `content` attribute). UTF-16 declared this way means UTF-8, as
/// the standard says (the bytes were readable as ASCII).
fn meta_charset(body: &[u8]) -> Option<&'static Encoding> {
    let head = &body[..body.len().min(1024)];
    for lt in memchr::memchr_iter(b'<', head) {
        let after = &head[lt + 1..];
        if !after
            .get(..4)
            .is_some_and(|n| n.eq_ignore_ascii_case(b"meta"))
        {
            continue;
        }
        let end = memchr::memchr(b'>', after).unwrap_or(after.len());
        let tag = after[4..end].to_ascii_lowercase();
        let Some(c) = tag.windows(7).position(|w| w == b"charset") else {
            continue;
        };
        let Some(value) = tag[c + 7..].trim_ascii_start().strip_prefix(b"=") else {
            continue;
        };
        let value = value.trim_ascii_start();
        let value = value
            .strip_prefix(b"\"")
            .or_else(|| value.strip_prefix(b"'"))
            .unwrap_or(value);
        let len = value
            .iter()
            .position(|&b| matches!(b, b'"' | b'\'' | b';' | b'/') || b.is_ascii_whitespace())
            .unwrap_or(value.len());
        if let Some(e) = Encoding::for_label(&value[..len]) {
            return Some(
                if e == encoding_rs::UTF_16LE || e == encoding_rs::UTF_16BE {
                    UTF_8
                } else {
                    e
                },
            );
        }
    }
    None
}

/// `u` as a page to fetch: only http and https, without its fragment, and
/// with its percent-encodings normalized (RFC 3986, 6.2.2.2: unreserved
/// characters decoded, hex digits upper case), so that `/~a`, `/%7ea` and
/// `/%7Ea` are one page, fetched once.
pub fn page(mut u: Url) -> Option<Url> {
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    u.set_fragment(None);
    if let Some(path) = tidy_percent(u.path()) {
        u.set_path(&path);
    }
    if let Some(query) = u.query().and_then(tidy_percent) {
        u.set_query(Some(&query));
    }
    Some(u)
}

/// `url` as the crawl knows and reports it: without credentials, so that a
/// page reached with and without the start URL's `user:password@` is one
/// page, and no password reaches the output. (Requests keep them.)
pub fn shown(url: &Url) -> std::borrow::Cow<'_, str> {
    if url.username().is_empty() && url.password().is_none() {
        return url.as_str().into();
    }
    let mut bare = url.clone();
    // Cannot fail: an http(s) URL has a host.
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    String::from(bare).into()
}

/// `s` with each `%XX` that encodes an unreserved character (letters,
/// digits, `-._~`) decoded and the hex digits of the others in upper case;
/// `None` when that changes nothing.
fn tidy_percent(s: &str) -> Option<String> {
    if !s.contains('%') {
        return None;
    }
    let hex = |b: u8| char::from(b).to_digit(16);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if let [b'%', h, l, ..] = b[i..]
            && let (Some(hi), Some(lo)) = (hex(h), hex(l))
        {
            let v = (hi * 16 + lo) as u8;
            if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                out.push(v);
            } else {
                out.extend([b'%', h.to_ascii_uppercase(), l.to_ascii_uppercase()]);
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    // Only ASCII bytes were decoded, from ASCII, so it stays UTF-8.
    let out = String::from_utf8(out).expect("percent tidy keeps UTF-8");
    (out != s).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(base: &str, html: &[u8]) -> Vec<String> {
        let base = Url::parse(base).unwrap();
        let mut out = vec![];
        extract(&base, html, None, &mut out).unwrap();
        out.iter().map(|u| u.as_str().to_owned()).collect()
    }

    fn links_in(base: &str, html: &[u8], declared: Option<&'static Encoding>) -> Vec<String> {
        let base = Url::parse(base).unwrap();
        let mut out = vec![];
        extract(&base, html, declared, &mut out).unwrap();
        out.iter().map(|u| u.as_str().to_owned()).collect()
    }

    #[test]
    fn pages_in_legacy_charsets_are_decoded_with_their_encoding() {
        let latin1 = charset_param(b"text/html; charset=ISO-8859-1");
        assert_eq!(latin1, Some(encoding_rs::WINDOWS_1252));
        assert_eq!(charset_param(b"text/html;charset=\"utf-8\""), Some(UTF_8));
        assert_eq!(charset_param(b"text/html"), None);
        assert_eq!(charset_param(b"text/html; charset=klingon"), None);
        // The path is UTF-8 whatever the page's encoding; the query is
        // encoded in the page's encoding, as browsers do.
        assert_eq!(
            links_in("http://h/", b"<a href='/caf\xe9?q=\xe9'>", latin1),
            ["http://h/caf%C3%A9?q=%E9"]
        );
        // A character reference stays what it says in any encoding.
        assert_eq!(
            links_in("http://h/", b"<a href='/caf&eacute;'>", latin1),
            ["http://h/caf%C3%A9"]
        );
        // Declared by <meta>, in either form, when the header is silent.
        for meta in [
            &b"<meta charset=iso-8859-1>"[..],
            b"<META HTTP-EQUIV='Content-Type' CONTENT='text/html; charset=windows-1252'>",
        ] {
            let page = [meta, b"<a href='/caf\xe9'>"].concat();
            assert_eq!(links_in("http://h/", &page, None), ["http://h/caf%C3%A9"]);
        }
        // The header wins over <meta>; a byte order mark wins over both.
        let page = b"<meta charset=shift_jis><a href='/caf\xe9'>";
        assert_eq!(links_in("http://h/", page, latin1), ["http://h/caf%C3%A9"]);
        let page = b"\xef\xbb\xbf<a href='/caf\xc3\xa9'>";
        assert_eq!(links_in("http://h/", page, latin1), ["http://h/caf%C3%A9"]);
        // Shift_JIS: "/日本" is 0x93FA 0x967B.
        let sjis = Encoding::for_label(b"shift_jis");
        assert_eq!(
            links_in("http://h/", b"<a href='/\x93\xfa\x96\x7b'>", sjis),
            ["http://h/%E6%97%A5%E6%9C%AC"]
        );
        // Without any declaration, UTF-8 (invalid bytes become U+FFFD).
        assert_eq!(
            links_in("http://h/", b"<a href='/caf\xc3\xa9'>", None),
            ["http://h/caf%C3%A9"]
        );
    }

    #[test]
    fn cdata_sections_and_raw_text_follow_the_namespace() {
        // In SVG and MathML, CDATA hides markup (a script's '<a href>').
        assert_eq!(
            links(
                "http://h/",
                b"<svg><![CDATA[ if (a > b) { s = '<a href=/cdata>'; } ]]></svg><a href=/ok>"
            ),
            ["http://h/ok"]
        );
        assert_eq!(
            links(
                "http://h/",
                b"<math><mi>x</mi><![CDATA[<a href=/m>]]></math><a href=/ok>"
            ),
            ["http://h/ok"]
        );
        // In HTML it is a bogus comment, which ends at the first '>'.
        assert_eq!(
            links("http://h/", b"<p><![CDATA[ x ]]><a href=/after>"),
            ["http://h/after"]
        );
        // SVG's title is not HTML's: its contents are markup, not RCDATA.
        assert_eq!(
            links("http://h/", b"<svg><title><a href=/t>t</a></title></svg>"),
            ["http://h/t"]
        );
        // A breakout tag or the end of <svg> returns to HTML: <style> is
        // raw text again.
        for html in [
            &b"<svg><p><style><a href=/raw></style><a href=/real>"[..],
            b"<svg></svg><style><a href=/raw></style><a href=/real>",
            b"<svg/><style><a href=/raw></style><a href=/real>",
        ] {
            assert_eq!(links("http://h/", html), ["http://h/real"]);
        }
        // Inside foreignObject the content is HTML again: CDATA is a bogus
        // comment there.
        assert_eq!(
            links(
                "http://h/",
                b"<svg><foreignObject><![CDATA[x]]><a href=/fo></foreignObject></svg>"
            ),
            ["http://h/fo"]
        );
        // Hostile nesting is bounded.
        let deep = "<svg>".repeat(10_000) + "<![CDATA[<a href=/no>]]><a href=/yes>";
        assert_eq!(links("http://h/", deep.as_bytes()), ["http://h/yes"]);
    }

    #[test]
    fn extracts_and_normalizes() {
        let got = links(
            "http://h/a/b.html",
            b"<a href='c.html#x'>c</a><a href=/d>d</a><a href='mailto:x@y'>m</a>\
              <A HREF=\"https://o/e\">e</A><a href='#top'>t</a><iframe src=f>",
        );
        assert_eq!(
            got,
            [
                "http://h/a/c.html",
                "http://h/d",
                "https://o/e",
                "http://h/a/f"
            ]
        );
    }

    #[test]
    fn shown_drops_credentials_only() {
        let u = Url::parse("http://u:p@h/a?q").unwrap();
        assert_eq!(shown(&u), "http://h/a?q");
        let u = Url::parse("http://h/a").unwrap();
        assert!(matches!(
            shown(&u),
            std::borrow::Cow::Borrowed("http://h/a")
        ));
    }

    #[test]
    fn noframes_content_is_text() {
        let got = links(
            "http://h/",
            b"<noframes><a href=/in>x</a></noframes><a href=/out>y</a>",
        );
        assert_eq!(got, ["http://h/out"]);
    }

    #[test]
    fn percent_encodings_are_normalized() {
        let got = links(
            "http://h/",
            b"<a href='/%7ea'>1</a><a href='/%7Ea?q=%2f%41'>2</a><a href='/~a?q=%2F%41'>3</a>\
              <a href='/x%2fy%zz%4'>4</a><a href='/caf%C3%A9'>5</a>",
        );
        assert_eq!(
            got,
            [
                "http://h/~a",
                "http://h/~a?q=%2FA",
                "http://h/~a?q=%2FA",
                "http://h/x%2Fy%zz%4",
                "http://h/caf%C3%A9"
            ]
        );
    }

    #[test]
    fn survives_invalid_utf8_and_honours_base() {
        let got = links(
            "http://h/",
            b"<base href='http://b/x/'>\xff\xfe<a href='y'>\x80</a><a href=",
        );
        assert_eq!(got[0], "http://b/x/y");
    }

    #[test]
    fn first_base_only_and_only_for_later_links() {
        let got = links(
            "http://h/p/",
            b"<a href=a1><base target=_top><BASE HREF='../q/'><base href='http://z/'>\
              <a href=a2>",
        );
        assert_eq!(got, ["http://h/p/a1", "http://h/q/a2"]);
    }

    #[test]
    fn decodes_character_references() {
        let got = links(
            "http://h/",
            b"<a href='/s?a=1&amp;b=2&#x26;c=3&lt'>x</a><a href=\"/&quot;q\">y</a>",
        );
        assert_eq!(got, ["http://h/s?a=1&b=2&c=3%3C", "http://h/%22q"]);
    }

    #[test]
    fn all_link_tags_and_attributes() {
        let got = links(
            "http://h/",
            b"<map><AREA shape=rect HREF=/area></map><frameset><frame name=f src=/frame>\
              </frameset><iframe title='t' src=\"/iframe\"></iframe>\
              <a>no href</a><a href>empty</a><a href=''>empty</a><a name=x href=/last>\
              <img src=/img><link href=/css><frame href=/not-src><a src=/not-href>",
        );
        assert_eq!(
            got,
            [
                "http://h/area",
                "http://h/frame",
                "http://h/iframe",
                "http://h/last"
            ]
        );
    }

    #[test]
    fn first_duplicate_attribute_wins() {
        let got = links(
            "http://h/",
            b"<a href=/one href=/two><a HREF=/three Href=/four>",
        );
        assert_eq!(got, ["http://h/one", "http://h/three"]);
    }

    #[test]
    fn no_links_from_scripts_styles_comments_or_text() {
        let got = links(
            "http://h/",
            b"<script>document.write(\"<a href='/s1'>\"); if (a<b) {}</script>\
              <style>a[href='/s2'] {}</style><!-- <a href=/c> --><textarea><a href=/t>\
              </textarea><title><a href=/ti></title>&lt;a href=/x&gt;<a href=/ok>",
        );
        assert_eq!(got, ["http://h/ok"]);
    }

    #[test]
    fn only_http_and_https() {
        let got = links(
            "https://h/",
            b"<a href='javascript:x()'><a href='ftp://f/'><a href='//o/p'>\
              <a href='  /trimmed  '><a href='data:text/html,x'>",
        );
        assert_eq!(got, ["https://o/p", "https://h/trimmed"]);
    }
}
