//! Small pieces every service client needs: path segments, query strings,
//! marker paging.

use super::keystone::error_chain;
use super::{CloudError, Invalid};
use std::future::Future;

/// Percent-encodes a path segment (tags such as `channel:stable`).
pub(crate) fn encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648 §4), for Nova's `user_data`.
/// Twenty lines, where a crate would be more to review.
pub(crate) fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(base64_len(data.len()));
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The length of [`base64`]'s output for `n` bytes.
pub(crate) fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// A tag of 1 to `max` characters without `/` or `,` (Nova and Neutron).
pub(crate) fn check_tag(tag: &str, max: usize) -> Result<(), Invalid> {
    let len = tag.chars().count();
    if (1..=max).contains(&len) && !tag.contains(['/', ',']) {
        Ok(())
    } else {
        Err(Invalid::Tag {
            tag: tag.into(),
            max,
        })
    }
}

/// `url?k=v&…` with keys and values encoded.
pub(crate) fn with_query(
    service: &'static str,
    url: &str,
    query: &[(&str, &str)],
) -> Result<String, CloudError> {
    reqwest::Url::parse_with_params(url, query)
        .map(|u| u.to_string())
        .map_err(|e| CloudError::Protocol {
            service,
            what: format!("the URL {url}"),
            message: error_chain(&e),
        })
}

/// Every item of a listing paged by `limit` and `marker` (the id of the
/// last item seen). Nova and Neutron also offer `*_links` with the next
/// page, but those carry the host the service thinks it has, which is
/// wrong behind proxies. `fetch` gets the marker (none for the first page)
/// and returns one page of at most `page` items. `what` names the listing
/// in errors (`GET http://…/servers/detail`).
pub(crate) async fn marker_pages<T, F, Fut>(
    service: &'static str,
    what: &str,
    page: usize,
    id: impl Fn(&T) -> &str,
    mut fetch: F,
) -> Result<Vec<T>, CloudError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, CloudError>>,
{
    let mut all: Vec<T> = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let items = fetch(marker.clone()).await?;
        let n = items.len();
        let last = items.last().map(|t| id(t).to_string());
        // A service that ignores `marker` answers the same page again:
        // what follows it cannot be reached, and a partial list must not
        // pass for the whole one.
        if marker.is_some() && last == marker {
            return Err(CloudError::Protocol {
                service,
                what: what.to_string(),
                message: format!(
                    "the page after marker {} repeats it: the service does not page by marker",
                    marker.unwrap_or_default()
                ),
            });
        }
        all.extend(items);
        // Fewer than asked: the last page. More than asked: the service
        // does not page at all and this was everything.
        if n != page {
            return Ok(all);
        }
        marker = last;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode("channel:stable"), "channel%3Astable");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn base64_of_the_rfc_4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
            assert_eq!(base64_len(plain.len()), coded.len());
        }
        assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
    }

    #[test]
    fn queries_are_encoded() {
        assert_eq!(
            with_query(
                "nova",
                "http://n/servers",
                &[("name", "^ingot-"), ("tags", "a,b")]
            )
            .unwrap(),
            "http://n/servers?name=%5Eingot-&tags=a%2Cb"
        );
    }

    type Pages = (Result<Vec<&'static str>, CloudError>, Vec<Option<String>>);

    fn pages(data: &[&'static str], page: usize, honours_marker: bool) -> Pages {
        let asked = RefCell::new(Vec::new());
        let got = tokio_test_block_on(marker_pages(
            "nova",
            "GET /servers",
            page,
            |s: &&str| s,
            |marker: Option<String>| {
                asked.borrow_mut().push(marker.clone());
                let start = match (&marker, honours_marker) {
                    (Some(m), true) => data.iter().position(|d| d == m).unwrap() + 1,
                    _ => 0,
                };
                let items: Vec<&str> = data[start..].iter().take(page).copied().collect();
                async move { Ok(items) }
            },
        ));
        (got, asked.into_inner())
    }

    fn tokio_test_block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn marker_paging_reads_every_page_once() {
        let (got, asked) = pages(&["a", "b", "c", "d", "e"], 2, true);
        assert_eq!(got.unwrap(), ["a", "b", "c", "d", "e"]);
        assert_eq!(asked, [None, Some("b".into()), Some("d".into())]);
        // A last page that is exactly full costs one empty request.
        let (got, asked) = pages(&["a", "b", "c", "d"], 2, true);
        assert_eq!(got.unwrap(), ["a", "b", "c", "d"]);
        assert_eq!(asked.len(), 3);
    }

    #[test]
    fn a_service_that_ignores_the_marker_is_an_error_not_a_loop() {
        let (got, asked) = pages(&["a", "b", "c"], 2, false);
        assert_eq!(
            got.unwrap_err().to_string(),
            "nova: unexpected answer to GET /servers: the page after marker b repeats it: the service does not page by marker"
        );
        assert_eq!(asked.len(), 2);
    }
}
