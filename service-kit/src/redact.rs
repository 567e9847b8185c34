//! What a log line may say of a configured address: the place, never a secret in it.

/// `url` without the password of its user info (`https://user:secret@host/` gives
/// `https://user@host/`), for logging a configured URL. A string that is not a URL is given
/// back whole: the flags this serves are checked as URLs before they are logged.
pub fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Fails only for URLs that cannot hold user info, which then hold no password.
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn a_urls_password_is_left_out_and_the_rest_kept() {
        let url = "https://svc:hunter2@master.example:8443/base";
        assert_eq!(
            without_password(url),
            "https://svc@master.example:8443/base"
        );
    }

    #[test]
    fn a_url_without_a_password_is_kept_as_written() {
        for url in [
            "http://127.0.0.1:8080",
            "http://user@sidecar/work",
            "not a url",
        ] {
            assert_eq!(without_password(url), url);
        }
    }
}
