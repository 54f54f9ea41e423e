//! The webhook's `Authorization` check against the obvious definition:
//! it passes exactly when the header is `Bearer ` followed by the token.

use tradingbot::http::auth::bearer_matches;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&length, rest)) = data.split_first() else {
            return;
        };
        let (token, header) = rest.split_at(usize::from(length).min(rest.len()));
        let expected = header.strip_prefix(b"Bearer ") == Some(token);
        assert_eq!(bearer_matches(header, token), expected);
    });
}
