//! Link extraction with `lol_html` (a streaming HTML tokenizer, no regular
//! expressions over HTML) and URL normalisation with `url`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::str::FromStr;

use lol_html::html_content::Element;
use lol_html::{ElementContentHandlers, HtmlRewriter, Selector, Settings};
use url::Url;

thread_local! {
    /// The selectors, parsed once per thread rather than once per page.
    static SELECTORS: [Selector; 3] = [
        Selector::from_str("base[href]").expect("valid selector"),
        Selector::from_str("a[href], area[href]").expect("valid selector"),
        Selector::from_str("frame[src], iframe[src]").expect("valid selector"),
    ];
}

/// Collects the absolute http(s) URLs that `body` links to (`a[href]`,
/// `area[href]`, `frame[src]`, `iframe[src]`), resolved against `base` (or
/// the page's own `<base href>`), with fragments removed. Invalid UTF-8 and
/// broken markup are tolerated: the tokenizer recovers as browsers do.
pub fn extract(base: &Url, body: &[u8], out: &mut Vec<Url>) -> Result<(), String> {
    let base = RefCell::new(base.clone());
    let found = RefCell::new(Vec::new());
    let add = |raw: &str| {
        if let Some(u) = normalize(&base.borrow(), raw) {
            found.borrow_mut().push(u);
        }
    };
    SELECTORS.with(|[base_sel, link_sel, frame_sel]| {
        let on_base = ElementContentHandlers::default().element(|el: &mut Element<'_, '_>| {
            if let Some(href) = el.get_attribute("href") {
                let joined = base.borrow().join(href.trim());
                if let Ok(u) = joined {
                    *base.borrow_mut() = u;
                }
            }
            Ok(())
        });
        let on_link = ElementContentHandlers::default().element(|el: &mut Element<'_, '_>| {
            if let Some(href) = el.get_attribute("href") {
                add(&href);
            }
            Ok(())
        });
        let on_frame = ElementContentHandlers::default().element(|el: &mut Element<'_, '_>| {
            if let Some(src) = el.get_attribute("src") {
                add(&src);
            }
            Ok(())
        });
        let settings = Settings::new()
            .append_element_content_handler((Cow::Borrowed(base_sel), on_base))
            .append_element_content_handler((Cow::Borrowed(link_sel), on_link))
            .append_element_content_handler((Cow::Borrowed(frame_sel), on_frame));
        let mut rewriter = HtmlRewriter::new(settings, |_: &[u8]| {});
        rewriter.write(body).map_err(|e| e.to_string())?;
        rewriter.end().map_err(|e| e.to_string())
    })?;
    out.append(&mut found.into_inner());
    Ok(())
}

/// `raw` resolved against `base`: only http and https, no fragment.
pub fn normalize(base: &Url, raw: &str) -> Option<Url> {
    let raw = raw.trim();
    if raw.is_empty() || raw.starts_with('#') {
        return None;
    }
    let mut u = base.join(raw).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    u.set_fragment(None);
    Some(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_and_normalizes() {
        let base = Url::parse("http://h/a/b.html").unwrap();
        let html = b"<a href='c.html#x'>c</a><a href=/d>d</a><a href='mailto:x@y'>m</a>\
                     <A HREF=\"https://o/e\">e</A><a href='#top'>t</a><iframe src=f>";
        let mut out = vec![];
        extract(&base, html, &mut out).unwrap();
        let got: Vec<_> = out.iter().map(Url::as_str).collect();
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
    fn survives_invalid_utf8_and_honours_base() {
        let base = Url::parse("http://h/").unwrap();
        let html = b"<base href='http://b/x/'>\xff\xfe<a href='y'>\x80</a><a href=";
        let mut out = vec![];
        extract(&base, html, &mut out).unwrap();
        assert_eq!(out[0].as_str(), "http://b/x/y");
    }
}
