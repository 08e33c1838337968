//! A web app served beside the interface: `GET /` and the files of one directory (a
//! built single-page app) for requests that are neither `/api/…` nor for a canister's
//! host, plus `/keepsake.json` with what the app needs to know (here: which canister).
//! Only plain file names under the directory are served (no `..`, no hidden files).

use std::path::PathBuf;

/// The app: its built files and the JSON it gets at `/keepsake.json`.
#[derive(Clone, Debug)]
pub struct App {
    pub dir: PathBuf,
    pub config_json: String,
}

impl App {
    /// The bytes and media type for `path` (`/` is `index.html`), if the app has it.
    pub fn file(&self, path: &str) -> Option<(Vec<u8>, &'static str)> {
        if path == "/keepsake.json" {
            return Some((self.config_json.clone().into_bytes(), "application/json"));
        }
        let rel = path.trim_start_matches('/');
        let rel = if rel.is_empty() { "index.html" } else { rel };
        let safe = rel.split('/').all(|seg| {
            !seg.is_empty() && !seg.starts_with('.') && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
        if !safe {
            return None;
        }
        let mime = match rel.rsplit('.').next() {
            Some("html") => "text/html; charset=utf-8",
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("json") => "application/json",
            Some("map") => "application/json",
            Some("svg") => "image/svg+xml",
            _ => "application/octet-stream",
        };
        std::fs::read(self.dir.join(rel)).ok().map(|b| (b, mime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_its_files_and_nothing_outside() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("index.html"), "<p>hi</p>").unwrap();
        std::fs::write(d.path().join("app.js"), "1").unwrap();
        let app = App { dir: d.path().join(""), config_json: "{\"canister\":\"x\"}".into() };
        assert_eq!(app.file("/").unwrap(), (b"<p>hi</p>".to_vec(), "text/html; charset=utf-8"));
        assert_eq!(app.file("/app.js").unwrap().1, "text/javascript; charset=utf-8");
        assert_eq!(app.file("/keepsake.json").unwrap().0, b"{\"canister\":\"x\"}");
        for bad in ["/../etc/passwd", "/.env", "/a//b", "/%2e%2e/x", "/missing.js"] {
            assert!(app.file(bad).is_none(), "{bad}");
        }
    }
}
