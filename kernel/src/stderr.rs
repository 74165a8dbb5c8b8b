//! Line-bounded reading of a child process's stderr (workers and upstream servers alike), so a
//! child that writes a huge line without a newline cannot make the supervisor buffer it.

use futures::{Stream, StreamExt as _};
use tokio::io::AsyncRead;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, FramedRead};

/// Longest stderr line the supervisor keeps, in bytes (without the newline). A longer line is
/// dropped whole, as it arrives, and replaced by a marker line naming this limit: the
/// supervisor holds at most this many bytes of a line, plus one read buffer, per child.
pub const MAX_STDERR_LINE_BYTES: usize = 8 << 10;

/// The lines of `reader` (lossily decoded as UTF-8, without the line ending), each at most
/// [`MAX_STDERR_LINE_BYTES`] long; an over-long line comes out as
/// `[stderr line longer than 8192 bytes dropped]`. Ends at end of file or on a read error.
pub fn stderr_lines<R>(reader: R) -> impl Stream<Item = String> + Send
where
    R: AsyncRead + Unpin + Send,
{
    let codec =
        AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), Vec::new(), MAX_STDERR_LINE_BYTES);
    let framed = FramedRead::new(reader, codec);
    futures::stream::unfold(
        (framed, false),
        |(mut framed, mut after_error)| async move {
            loop {
                match framed.next().await {
                    Some(Ok(line)) => {
                        let line = line.strip_suffix(b"\r").unwrap_or(&line);
                        let line = String::from_utf8_lossy(line).into_owned();
                        return Some((line, (framed, false)));
                    }
                    Some(Err(AnyDelimiterCodecError::MaxChunkLengthExceeded)) => {
                        // The codec now skips to the next newline; the stream pauses once (one
                        // `None`) before it reads on.
                        let marker = format!(
                            "[stderr line longer than {MAX_STDERR_LINE_BYTES} bytes dropped]"
                        );
                        return Some((marker, (framed, true)));
                    }
                    Some(Err(AnyDelimiterCodecError::Io(_))) => return None,
                    None if after_error => after_error = false,
                    None => return None,
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8]) -> Vec<String> {
        stderr_lines(input).collect().await
    }

    #[tokio::test]
    async fn lines_at_the_limit_pass_and_longer_ones_are_replaced_by_a_marker() {
        let at_limit = "a".repeat(MAX_STDERR_LINE_BYTES);
        let over = "b".repeat(MAX_STDERR_LINE_BYTES + 1);
        let huge = "c".repeat(10 * MAX_STDERR_LINE_BYTES);
        let input = format!("first\r\n{at_limit}\n{over}\n{huge}\nlast\npartial");
        let marker = format!("[stderr line longer than {MAX_STDERR_LINE_BYTES} bytes dropped]");
        assert_eq!(
            lines(input.as_bytes()).await,
            ["first", &at_limit, &marker, &marker, "last", "partial"]
        );
    }

    #[tokio::test]
    async fn an_unterminated_huge_line_ends_in_one_marker() {
        let input = vec![b'x'; 50 * MAX_STDERR_LINE_BYTES];
        let got = lines(&input).await;
        assert_eq!(
            got.len(),
            1,
            "{:?}",
            got.iter().map(String::len).collect::<Vec<_>>()
        );
        assert!(got[0].starts_with("[stderr line longer than"));
    }

    #[tokio::test]
    async fn invalid_utf8_is_kept_lossily() {
        assert_eq!(lines(b"a\xffb\nok\n").await, ["a\u{fffd}b", "ok"]);
    }
}
