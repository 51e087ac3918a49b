//! The answer to an ack, nack or extend, token by token: which texts are
//! tokens of this subscription, which of them acted, and what the others
//! are told. Both delivery engines answer through [`TokenBatch`], so they
//! answer alike:
//!
//! 1. the texts are verified with the subscription's key; the distinct
//!    genuine tokens are the ones that may act (a text repeated in one
//!    request acts once);
//! 2. the engine lets the tokens that match a message's current lease act
//!    and [`settles`](TokenBatch::settle) them;
//! 3. [`finish`](TokenBatch::finish) judges every other token against the
//!    state *after* the request ([`unsettled_status`]), and answers each
//!    text in request order. A repeated text is answered like its first
//!    occurrence, except that a repeated ack answers `unknown`: its
//!    message is no longer pending.

use crate::subscription::{TokenOutcome, TokenStatus};
use crate::token::{LeaseToken, TokenKey, TokenMatch};

/// The tokens of one request and how each fared; see the module
/// documentation.
#[derive(Debug)]
pub struct TokenBatch<'a> {
    texts: &'a [String],
    /// Per text, the index of its token in `tokens` if it is one of this
    /// subscription's tokens.
    token_of_text: Vec<Option<usize>>,
    /// The distinct genuine tokens, in order of first appearance.
    tokens: Vec<LeaseToken>,
    /// Per token, its status once settled.
    statuses: Vec<Option<TokenStatus>>,
}

impl<'a> TokenBatch<'a> {
    /// Verifies every text with `key`.
    pub fn verify(texts: &'a [String], key: &TokenKey) -> TokenBatch<'a> {
        let mut tokens: Vec<LeaseToken> = Vec::new();
        let token_of_text = texts
            .iter()
            .map(|text| {
                let token = key.verify(text)?;
                Some(match tokens.iter().position(|seen| *seen == token) {
                    Some(token_idx) => token_idx,
                    None => {
                        tokens.push(token);
                        tokens.len() - 1
                    }
                })
            })
            .collect();
        let statuses = vec![None; tokens.len()];
        TokenBatch {
            texts,
            token_of_text,
            tokens,
            statuses,
        }
    }

    /// The distinct genuine tokens; indexes into this slice name them.
    pub fn tokens(&self) -> &[LeaseToken] {
        &self.tokens
    }

    /// Records that token `token_idx` acted, with `status`.
    pub fn settle(&mut self, token_idx: usize, status: TokenStatus) {
        self.statuses[token_idx] = Some(status);
    }

    /// Records `status` for the unsettled token equal to `token`, if any
    /// (for an engine whose statement reports the leases it acted on).
    pub fn settle_token(&mut self, token: &LeaseToken, status: TokenStatus) {
        if let Some(token_idx) = self.tokens.iter().position(|t| t == token) {
            self.settle(token_idx, status);
        }
    }

    /// The tokens that did not act, to be judged.
    pub fn unsettled(&self) -> Vec<LeaseToken> {
        self.tokens
            .iter()
            .zip(&self.statuses)
            .filter(|(_, status)| status.is_none())
            .map(|(token, _)| *token)
            .collect()
    }

    /// Answers every text in request order; `judge` tells what each token
    /// that did not act refers to after the request.
    pub fn finish(self, judge: impl Fn(&LeaseToken) -> TokenMatch) -> Vec<TokenOutcome> {
        let mut answered = vec![false; self.tokens.len()];
        let statuses: Vec<TokenStatus> = self
            .tokens
            .iter()
            .zip(&self.statuses)
            .map(|(token, status)| status.unwrap_or_else(|| unsettled_status(judge(token))))
            .collect();
        self.texts
            .iter()
            .zip(&self.token_of_text)
            .map(|(text, token_idx)| {
                let status = match token_idx {
                    None => TokenStatus::Unknown,
                    Some(token_idx) => {
                        let repeated = std::mem::replace(&mut answered[*token_idx], true);
                        match statuses[*token_idx] {
                            TokenStatus::Acked if repeated => TokenStatus::Unknown,
                            status => status,
                        }
                    }
                };
                TokenOutcome {
                    token: text.clone(),
                    status,
                }
            })
            .collect()
    }
}

/// The answer for a genuine token that did not act: `expired` when it
/// names an earlier lease of a message that was leased again (or its
/// current lease, which could not act: an extend of a lease that already
/// ended), `unknown` when its message is not pending.
pub fn unsettled_status(found: TokenMatch) -> TokenStatus {
    match found {
        TokenMatch::Current { .. } | TokenMatch::Superseded => TokenStatus::Expired,
        TokenMatch::Unknown => TokenStatus::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::lease_number;

    #[test]
    fn repeats_act_once_and_strangers_are_unknown() {
        let key = TokenKey::from_seed(3);
        let first = key.issue(1, lease_number(0, 1)).to_string();
        let second = key.issue(2, lease_number(0, 1)).to_string();
        let foreign = TokenKey::from_seed(4)
            .issue(1, lease_number(0, 1))
            .to_string();
        let texts = vec![
            first.clone(),
            "garbage".to_string(),
            foreign,
            first.clone(),
            second.clone(),
            second,
        ];
        let mut batch = TokenBatch::verify(&texts, &key);
        assert_eq!(batch.tokens().len(), 2);
        batch.settle(0, TokenStatus::Acked);
        assert_eq!(batch.unsettled().len(), 1);
        let statuses: Vec<TokenStatus> = batch
            .finish(|_| TokenMatch::Superseded)
            .into_iter()
            .map(|outcome| outcome.status)
            .collect();
        assert_eq!(
            statuses,
            [
                TokenStatus::Acked,
                TokenStatus::Unknown,
                TokenStatus::Unknown,
                TokenStatus::Unknown,
                TokenStatus::Expired,
                TokenStatus::Expired,
            ]
        );
    }
}
