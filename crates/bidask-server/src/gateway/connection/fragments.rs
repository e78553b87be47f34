//! Long messages (a deep book's snapshot) in frames of at most
//! [`FRAGMENT`] bytes: tungstenite's write buffer keeps the largest size it
//! ever held, and a subscriber must not keep a copy of its snapshot for as
//! long as it stays connected.

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message, Utf8Bytes};

use super::FRAGMENT;
use crate::gateway::handshake::Socket;

/// Writes the concatenation of `parts`, longer than [`FRAGMENT`], as one
/// text message in fragments (RFC 6455, section 5.4), each written before
/// the next is made.
pub(super) async fn send_fragments(
    socket: &mut Socket,
    parts: &[Utf8Bytes],
) -> Result<(), WsError> {
    let mut fragments = fragments(parts, FRAGMENT).peekable();
    let mut opcode = OpCode::Data(Data::Text);
    while let Some(fragment) = fragments.next() {
        let last = fragments.peek().is_none();
        socket
            .send(Message::Frame(Frame::message(fragment, opcode, last)))
            .await?;
        opcode = OpCode::Data(Data::Continue);
    }
    Ok(())
}

/// `parts` cut into pieces of at most `size` bytes (at least 4), each from
/// one part and between characters, so that even a client that decodes
/// each frame on its own reads valid UTF-8; the bytes are not copied.
fn fragments(parts: &[Utf8Bytes], size: usize) -> impl Iterator<Item = Bytes> + '_ {
    parts.iter().flat_map(move |part| {
        let bytes = Bytes::from(part.clone());
        let mut start = 0;
        std::iter::from_fn(move || {
            if start == bytes.len() {
                return None;
            }
            let mut end = (start + size).min(bytes.len());
            // UTF-8 continuation bytes are 0b10xx_xxxx; a character is at
            // most four bytes, so this steps back at most three.
            while end < bytes.len() && bytes[end] & 0xC0 == 0x80 {
                end -= 1;
            }
            let piece = bytes.slice(start..end);
            start = end;
            Some(piece)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(parts: &[&str], size: usize) -> Vec<String> {
        let parts: Vec<Utf8Bytes> = parts.iter().map(|part| Utf8Bytes::from(*part)).collect();
        fragments(&parts, size)
            .map(|piece| String::from_utf8(piece.to_vec()).expect("each piece is UTF-8"))
            .collect()
    }

    #[test]
    fn pieces_are_cut_between_characters_and_within_parts() {
        // "é" is two bytes, "€" three, "𝄞" four: every cut point of a
        // 5-byte piece falls inside one of them somewhere.
        let text = "aé€𝄞bé€𝄞c".repeat(7);
        for size in 4..=9 {
            let pieces = cut(&[&text], size);
            assert_eq!(pieces.concat(), text);
            assert!(
                pieces
                    .iter()
                    .all(|piece| !piece.is_empty() && piece.len() <= size)
            );
        }
        assert_eq!(cut(&["ab", "", "cdefg", "h"], 4), ["ab", "cdef", "g", "h"]);
        assert!(cut(&["", ""], 4).is_empty());
    }
}
