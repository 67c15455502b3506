//! `vecgate token`: mints a development HS256 token and prints it.

use crate::authn::mint_dev_token;
use crate::plan::value::parse_duration;
use std::time::Duration;

/// Mints a token signed with the secret in the environment variable `secret_env` and prints
/// it on stdout. Returns 0, or 2 for unusable arguments (the reason on stderr).
///
/// - `claims` are `name=value`; a value that parses as JSON is taken as JSON (`level=3`,
///   `admin=true`, `roles=["a","b"]`), anything else as a string (`region=eu`). Lists are
///   written as JSON: `--claim 'roles=["reader","writer"]'`; giving a name twice is an error
///   rather than a guess. `sub`, `iat`, `exp`, `iss` and `aud` come from their own options.
/// - `ttl` is a duration such as `90s`, `30m`, `1h`, `1h30m` (days as `24h`).
/// - The secret must have at least 32 bytes.
pub fn run(
    secret_env: &str,
    sub: &str,
    claims: &[String],
    ttl: &str,
    issuer: Option<&str>,
    audience: Option<&str>,
) -> i32 {
    match mint(secret_env, sub, claims, ttl, issuer, audience) {
        Ok(token) => {
            println!("{token}");
            0
        }
        Err(problem) => {
            eprintln!("error: {problem}");
            2
        }
    }
}

fn mint(
    secret_env: &str,
    sub: &str,
    claims: &[String],
    ttl: &str,
    issuer: Option<&str>,
    audience: Option<&str>,
) -> Result<String, String> {
    let secret = std::env::var(secret_env)
        .map_err(|_| format!("environment variable {secret_env} is not set (or not UTF-8)"))?;
    let ttl = parse_ttl(ttl)?;
    let claims = claims
        .iter()
        .map(|c| parse_claim(c))
        .collect::<Result<Vec<_>, _>>()?;
    mint_dev_token(secret.as_bytes(), sub, &claims, ttl, issuer, audience)
        .map_err(|e| e.to_string())
}

/// A positive duration of whole seconds or more.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    parse_duration(text.trim())
        .and_then(|d| d.to_std().ok())
        .filter(|d| d.as_secs() >= 1)
        .ok_or_else(|| format!("--ttl {text}: expected a positive duration such as 30m or 1h"))
}

/// `name=value`, the value as JSON when it parses, else as a string.
pub fn parse_claim(text: &str) -> Result<(String, serde_json::Value), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("--claim {text}: expected name=value"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("--claim {text}: the name is empty"));
    }
    let value = serde_json::from_str(value)
        .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
    Ok((name.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claim_values_are_json_when_they_parse() {
        assert_eq!(parse_claim("level=3").unwrap(), ("level".into(), json!(3)));
        assert_eq!(
            parse_claim(r#"roles=["a","b"]"#).unwrap(),
            ("roles".into(), json!(["a", "b"]))
        );
        assert_eq!(
            parse_claim("region=eu").unwrap(),
            ("region".into(), json!("eu"))
        );
        assert_eq!(
            parse_claim("expr=a=b").unwrap(),
            ("expr".into(), json!("a=b"))
        );
        assert_eq!(parse_claim("empty=").unwrap(), ("empty".into(), json!("")));
        assert!(parse_claim("novalue").is_err());
        assert!(parse_claim("=x").is_err());
    }

    #[test]
    fn ttl_must_be_a_positive_duration() {
        assert_eq!(parse_ttl("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_ttl("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("-5m").is_err());
        assert!(parse_ttl("soon").is_err());
    }
}
