//! Reading Server-Sent Events as the live-quote stream writes them: blocks ended by a blank
//! line, each an event (`id:`, `event:`, `data:` lines) or a comment (`: keep-alive`).

/// One event of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: u64,
    pub name: String,
    /// The `data:` line's value.
    pub data: String,
}

/// The first whole block in `buffer` (taken out of it, its blank line included), if any.
pub fn take_sse_block(buffer: &mut Vec<u8>) -> Option<String> {
    let end = buffer.windows(2).position(|w| w == b"\n\n")?;
    let block: Vec<u8> = buffer.drain(..end + 2).collect();
    Some(String::from_utf8(block).unwrap_or_else(|e| panic!("a block is not UTF-8: {e}")))
}

/// The event a block holds; `None` for a comment. Fails the test on a block that is neither,
/// or an event with other lines than exactly one `id:`, `event:` and `data:`.
pub fn parse_sse_event(block: &str) -> Option<SseEvent> {
    if block.starts_with(':') {
        return None;
    }
    let lines: Vec<&str> = block.trim_end_matches('\n').lines().collect();
    let field = |name: &str| {
        let prefix = format!("{name}: ");
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {name} in {block:?}"))
            .to_owned()
    };
    assert_eq!(lines.len(), 3, "id, event, data: {block:?}");
    Some(SseEvent {
        id: field("id")
            .parse()
            .unwrap_or_else(|e| panic!("id of {block:?}: {e}")),
        name: field("event"),
        data: field("data"),
    })
}
