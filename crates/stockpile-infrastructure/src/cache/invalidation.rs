//! The invalidation messages instances send each other to keep their first tiers coherent:
//! one type, one encoder, one parser.
//!
//! On the wire (the channel `<prefix>__invalidate`) a payload is text,
//! `<origin> <id> key <key>`, `<origin> <id> match <pattern>` or `<origin> <id> clear`, keys
//! and patterns relative to the prefix; several keys travel as one payload each, numbered on
//! from the message's id. The origin names the sending cache (no spaces), so that it can skip
//! its own messages, and the id is what a receiver confirms back to it
//! ([`super::acknowledgements`]); a key or a pattern is the rest of the payload and may hold
//! any character.

/// What a write or an operator made stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Invalidation {
    /// These keys: entries, or the generations of a write.
    Keys(Vec<String>),
    /// Every entry matching a Redis glob pattern.
    Pattern(String),
    /// Every entry under the prefix.
    All,
}

/// An [`Invalidation`], the cache that made it, and the id of its first payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub origin: String,
    pub id: u64,
    pub invalidation: Invalidation,
}

/// A payload that is no [`Message`]: of another version, or not ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a cache invalidation: {0:?}")]
pub(crate) struct Garbage(pub String);

impl Invalidation {
    /// How many payloads [`Message::encode`] writes for it, and so how many ids it takes.
    pub fn payloads(&self) -> usize {
        match self {
            Self::Keys(keys) => keys.len(),
            Self::Pattern(_) | Self::All => 1,
        }
    }
}

impl Message {
    /// The payloads the message is published as, in order: one per key (numbered from the
    /// message's id), or one.
    pub fn encode(&self) -> Vec<String> {
        let origin = &self.origin;
        let id = self.id;
        match &self.invalidation {
            Invalidation::Keys(keys) => (id..)
                .zip(keys)
                .map(|(id, key)| format!("{origin} {id} key {key}"))
                .collect(),
            Invalidation::Pattern(pattern) => vec![format!("{origin} {id} match {pattern}")],
            Invalidation::All => vec![format!("{origin} {id} clear")],
        }
    }

    /// The message one payload encodes (of one key at most); anything [`Message::encode`]
    /// cannot have written is [`Garbage`].
    ///
    /// # Errors
    /// [`Garbage`], with the payload (lossily decoded).
    pub fn parse(payload: &[u8]) -> Result<Self, Garbage> {
        let garbage = || Garbage(String::from_utf8_lossy(payload).into_owned());
        let text = std::str::from_utf8(payload).map_err(|_| garbage())?;
        let (origin, rest) = text.split_once(' ').ok_or_else(garbage)?;
        let (id, rest) = rest.split_once(' ').ok_or_else(garbage)?;
        // Only the digits `encode` writes: no sign, no leading zero.
        let canonical = id == "0" || !id.starts_with('0');
        if origin.is_empty() || !canonical || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(garbage());
        }
        let id = id.parse().map_err(|_| garbage())?;
        let invalidation = match rest.split_once(' ') {
            Some(("key", key)) => Invalidation::Keys(vec![key.to_owned()]),
            Some(("match", pattern)) => Invalidation::Pattern(pattern.to_owned()),
            None if rest == "clear" => Invalidation::All,
            _ => return Err(garbage()),
        };
        Ok(Self {
            origin: origin.to_owned(),
            id,
            invalidation,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn invalidation() -> impl Strategy<Value = Invalidation> {
        prop_oneof![
            proptest::collection::vec(any::<String>(), 1..4).prop_map(Invalidation::Keys),
            any::<String>().prop_map(Invalidation::Pattern),
            Just(Invalidation::All),
        ]
    }

    proptest! {
        #[test]
        fn every_message_reads_back_as_written(
            origin in "[^ ]{1,40}",
            id in 0..u64::MAX / 2,
            invalidation in invalidation(),
        ) {
            let message = Message { origin, id, invalidation };
            let parsed: Result<Vec<Message>, Garbage> = message
                .encode()
                .iter()
                .map(|payload| Message::parse(payload.as_bytes()))
                .collect();
            let parsed = parsed.map_err(|g| TestCaseError::fail(g.to_string()))?;
            let invalidation = match parsed.as_slice() {
                [one] if !matches!(one.invalidation, Invalidation::Keys(_)) => one.invalidation.clone(),
                keys => Invalidation::Keys(
                    keys.iter()
                        .flat_map(|m| match &m.invalidation {
                            Invalidation::Keys(keys) => keys.clone(),
                            _ => Vec::new(),
                        })
                        .collect(),
                ),
            };
            prop_assert_eq!(parsed.len(), message.invalidation.payloads());
            prop_assert!(parsed.iter().all(|m| m.origin == message.origin));
            let ids: Vec<u64> = parsed.iter().map(|m| m.id).collect();
            let numbered: Vec<u64> = (message.id..).take(parsed.len()).collect();
            prop_assert_eq!(ids, numbered);
            prop_assert_eq!(invalidation, message.invalidation);
        }

        #[test]
        fn a_payload_reads_as_a_message_only_if_it_encodes_one(payload in any::<Vec<u8>>()) {
            if let Ok(message) = Message::parse(&payload) {
                prop_assert_eq!(message.encode(), vec![String::from_utf8(payload).unwrap()]);
            }
        }
    }

    #[test]
    fn the_wire_format_is_the_one_every_instance_speaks() {
        let message = |invalidation| Message {
            origin: "1a-2b-0".to_owned(),
            id: 42,
            invalidation,
        };
        let cases = [
            (
                "1a-2b-0 42 key gen:stock:AAPL",
                Invalidation::Keys(vec!["gen:stock:AAPL".into()]),
            ),
            (
                "1a-2b-0 42 key a key with spaces",
                Invalidation::Keys(vec!["a key with spaces".into()]),
            ),
            (
                "1a-2b-0 42 match stocks:list:*",
                Invalidation::Pattern("stocks:list:*".into()),
            ),
            ("1a-2b-0 42 clear", Invalidation::All),
        ];
        for (wire, invalidation) in cases {
            assert_eq!(message(invalidation.clone()).encode(), vec![wire]);
            assert_eq!(Message::parse(wire.as_bytes()), Ok(message(invalidation)));
        }
    }

    #[test]
    fn several_keys_travel_as_one_payload_each_in_order() {
        let message = Message {
            origin: "o".to_owned(),
            id: 7,
            invalidation: Invalidation::Keys(vec!["gen:market".into(), "gen:stock:A".into()]),
        };
        assert_eq!(
            message.encode(),
            ["o 7 key gen:market", "o 8 key gen:stock:A"]
        );
    }

    #[test]
    fn garbage_is_rejected_not_misread() {
        for payload in [
            &b""[..],
            b"origin",
            b"origin ",
            b" 1 key k",
            b"origin key k",
            b"origin 1 key",
            b"origin 1 match",
            b"origin 1 clear now",
            b"origin 1 clear ",
            b"origin 1 KEY k",
            b"origin 1 flush",
            b"origin 1 delete k",
            b"origin -1 key k",
            b"origin +1 key k",
            b"origin 01 key k",
            b"origin 99999999999999999999 key k",
            b"\xff\xfe 1 key k",
            b"origin 1 key \xff",
        ] {
            assert!(
                Message::parse(payload).is_err(),
                "{:?} was read as a message",
                String::from_utf8_lossy(payload)
            );
        }
    }
}
