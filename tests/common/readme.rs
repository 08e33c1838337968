//! The `dfx canister call backend …` examples of README.md (shared by the tests that
//! type-check them and that run them through icp-cli against `keepsake serve`).

/// `(method, argument text)` of each `dfx canister call backend` example.
pub fn examples(readme: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let marker = "dfx canister call backend ";
    let mut rest = readme;
    while let Some(at) = rest.find(marker) {
        rest = &rest[at + marker.len()..];
        let method: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let after = rest[method.len()..].trim_start_matches(' ');
        let args = match after.strip_prefix('\'') {
            Some(quoted) => quoted[..quoted.find('\'').expect("closing quote")].to_string(),
            None => "()".to_string(),
        };
        out.push((method, args));
    }
    out
}

