//! Paging of ListVolumes and ListSnapshots. Items come sorted by engine id; a page holds at most
//! `max_entries` of them (all when 0), and the token of the next page, `after:<id>`, names the
//! last id returned, so a token stays valid when items come or go between the calls.

use super::convert::invalid;
use crate::engine::validate::bounded;
use tonic::Status;

/// Prefix of a page token; the rest is the last engine id already returned.
const TOKEN_PREFIX: &str = "after:";

/// The page of `items` (sorted by `id`) that follows `token`, and the next page's token (empty
/// when this page is the last). `kind` names the ids (`volume`, `snapshot`) for validation.
pub fn page<T>(
    items: Vec<T>,
    id: impl Fn(&T) -> &str,
    token: &str,
    max_entries: i32,
    kind: &'static str,
) -> Result<(Vec<T>, String), Status> {
    let after = parse_token(token, kind)?;
    let max = usize::try_from(max_entries).map_err(|_| invalid("max_entries is negative".into()))?;
    let mut rest = items.into_iter().filter(|v| after.as_deref().is_none_or(|a| id(v) > a)).peekable();
    let mut out = Vec::new();
    while max == 0 || out.len() < max {
        let Some(v) = rest.next() else { break };
        out.push(v);
    }
    let next = match (rest.peek().is_some(), out.last()) {
        (true, Some(last)) => format!("{TOKEN_PREFIX}{}", id(last)),
        _ => String::new(),
    };
    Ok((out, next))
}

/// The last id a previous page returned; ABORTED for a token this driver did not hand out.
fn parse_token(token: &str, kind: &'static str) -> Result<Option<String>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .strip_prefix(TOKEN_PREFIX)
        .filter(|id| crate::engine::validate::id(kind, id).is_ok())
        .map(|id| Some(id.to_owned()))
        .ok_or_else(|| Status::aborted(format!("starting_token {:?} is not a token of this driver", bounded(token))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("v{i}")).collect()
    }

    #[test]
    fn tokens_round_trip_and_foreign_ones_abort() {
        assert_eq!(parse_token("", "volume").unwrap(), None);
        assert_eq!(parse_token("after:pvc-1", "volume").unwrap().as_deref(), Some("pvc-1"));
        for bad in ["invalid-token", "after:", "after:../x", "12"] {
            assert_eq!(parse_token(bad, "volume").unwrap_err().code(), tonic::Code::Aborted, "{bad}");
        }
    }

    #[test]
    fn pages_follow_each_other_and_the_last_has_no_token() {
        let (first, token) = page(ids(5), |s| s.as_str(), "", 2, "volume").unwrap();
        assert_eq!((first, token.as_str()), (vec!["v0".to_owned(), "v1".to_owned()], "after:v1"));
        let (rest, token) = page(ids(5), |s| s.as_str(), "after:v1", 0, "volume").unwrap();
        assert_eq!((rest.len(), token.as_str()), (3, ""));
        let (exact, token) = page(ids(2), |s| s.as_str(), "", 2, "volume").unwrap();
        assert_eq!((exact.len(), token.as_str()), (2, ""));
        let gone = page(ids(5), |s| s.as_str(), "after:v0x", 0, "volume").unwrap().0;
        assert_eq!(gone.first().map(String::as_str), Some("v1"), "a deleted last id still pages on");
        assert_eq!(page(ids(1), |s| s.as_str(), "", -1, "volume").unwrap_err().code(), tonic::Code::InvalidArgument);
    }
}
