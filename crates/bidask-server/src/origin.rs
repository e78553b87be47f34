//! `BIDASK_ALLOWED_ORIGINS`: the browser origins, besides the server's
//! own, whose pages may call the API (CORS) and open the feed.
//!
//! Each entry is checked when the setting is read, so that a typo stops
//! the server with a message naming it instead of silently allowing
//! nothing (a value with a space after its comma used to be a list entry
//! no browser ever sends).

use std::str::FromStr;

use axum::http::{HeaderValue, Uri};

/// The list, comma-separated. Empty entries are skipped, so that an
/// empty setting, or a trailing comma, allows nothing more rather than
/// stopping the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins(pub Vec<AllowedOrigin>);

impl FromStr for AllowedOrigins {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        text.split(',')
            .filter(|entry| !entry.trim().is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigin {
    /// `*`: every origin. The API's credentials are bearer tokens, never
    /// cookies, so another site's page can only act with a token it
    /// already holds.
    Any,
    /// One origin, `scheme://host[:port]`, lower-cased as browsers send it.
    Exact(HeaderValue),
}

impl FromStr for AllowedOrigin {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "*" {
            return Ok(Self::Any);
        }
        let invalid = || {
            format!(
                "{text:?} is not an origin: write scheme://host[:port], such as \
                 https://shop.example or http://127.0.0.1:8080, or * for any"
            )
        };
        let uri: Uri = text.parse().map_err(|_| invalid())?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(invalid());
        };
        let scheme = scheme.to_ascii_lowercase();
        if !matches!(scheme.as_str(), "http" | "https")
            || authority.as_str().contains(['@', '*'])
            || uri.path() != "/"
            || uri.query().is_some()
        {
            return Err(invalid());
        }
        // Browsers leave a scheme's default port out of `Origin`.
        let authority = authority.as_str().to_ascii_lowercase();
        let default_port = if scheme == "https" { ":443" } else { ":80" };
        let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
        let origin = format!("{scheme}://{authority}");
        HeaderValue::from_str(&origin)
            .map(Self::Exact)
            .map_err(|_| invalid())
    }
}

/// Whether a request's `Origin` is one that `allowed` lets in.
pub fn allows(allowed: &[AllowedOrigin], origin: &str) -> bool {
    allowed.iter().any(|entry| match entry {
        AllowedOrigin::Any => true,
        AllowedOrigin::Exact(exact) => exact.as_bytes().eq_ignore_ascii_case(origin.as_bytes()),
    })
}

#[cfg(test)]
mod tests {
    use super::{AllowedOrigin, AllowedOrigins, allows};

    fn exact(origin: &'static str) -> AllowedOrigin {
        AllowedOrigin::Exact(axum::http::HeaderValue::from_static(origin))
    }

    #[test]
    fn origins_are_trimmed_and_lower_cased() {
        assert_eq!(" * ".parse(), Ok(AllowedOrigin::Any));
        assert_eq!(
            " https://Shop.Example ".parse(),
            Ok(exact("https://shop.example"))
        );
        assert_eq!(
            "HTTP://127.0.0.1:8080/".parse(),
            Ok(exact("http://127.0.0.1:8080"))
        );
        assert_eq!(
            "https://shop.example:443".parse(),
            Ok(exact("https://shop.example"))
        );
        assert_eq!(
            "http://shop.example:80".parse(),
            Ok(exact("http://shop.example"))
        );
        assert_eq!(
            "https://shop.example:80".parse(),
            Ok(exact("https://shop.example:80"))
        );
    }

    #[test]
    fn a_list_skips_empty_entries() {
        assert_eq!("".parse(), Ok(AllowedOrigins::default()));
        assert_eq!(
            " https://a.example, ,https://b.example,".parse(),
            Ok(AllowedOrigins(vec![
                exact("https://a.example"),
                exact("https://b.example")
            ]))
        );
    }

    #[test]
    fn anything_but_an_origin_is_refused_with_its_text() {
        for text in [
            "",
            " ",
            "shop.example",
            "https://shop.example/page",
            "https://shop.example?x=1",
            "ftp://shop.example",
            "https://user@shop.example",
            "https://",
            "https://*.example",
        ] {
            let refused = text.parse::<AllowedOrigin>();
            assert!(
                refused
                    .as_ref()
                    .is_err_and(|message| message.contains(&format!("{:?}", text.trim()))),
                "{text:?}: {refused:?}"
            );
        }
    }

    #[test]
    fn any_lets_every_origin_in_and_exact_one() {
        let list = [exact("https://shop.example")];
        assert!(allows(&list, "https://shop.example"));
        assert!(allows(&list, "HTTPS://SHOP.EXAMPLE"));
        assert!(!allows(&list, "https://shop.example:8443"));
        assert!(!allows(&list, "http://shop.example"));
        assert!(!allows(&[], "https://shop.example"));
        assert!(allows(&[AllowedOrigin::Any], "null"));
    }
}
