//! Token estimates for what a call costs or spares the model, in OpenAI `o200k_base` terms,
//! cheap enough to run on every result and every upstream reply.

/// Estimated `o200k_base` tokens of `text`, from runs of character classes the way the
/// encoding splits them: a letter run costs one token per 8 letters (rounded up), a digit run
/// one per 3 digits (the encoding splits numbers into groups of at most 3), a punctuation run
/// one per 3 characters, a line break run one, and a non-ASCII character one; spaces join the
/// word that follows. Against tiktoken-rs' exact count on JSON records, log lines and prose (the test
/// `mcpk-api` `tokens::tests::estimates_are_within_25_percent`) it was +11%, +0% and +3% when
/// written. Linear, about 0.02 µs per byte.
pub fn estimate_tokens(text: &str) -> usize {
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Letter,
        Digit,
        Punct,
        Newline,
        Space,
    }
    let cost = |class: Class, len: usize| match class {
        Class::Letter => len.div_ceil(8),
        Class::Digit => len.div_ceil(3),
        Class::Punct => len.div_ceil(3),
        Class::Newline => 1,
        Class::Space => 0,
    };
    let mut tokens = 0;
    let mut run: Option<(Class, usize)> = None;
    for c in text.chars() {
        if !c.is_ascii() {
            if let Some((class, len)) = run.take() {
                tokens += cost(class, len);
            }
            tokens += 1;
            continue;
        }
        let class = if c.is_ascii_alphabetic() {
            Class::Letter
        } else if c.is_ascii_digit() {
            Class::Digit
        } else if c == '\n' || c == '\r' {
            Class::Newline
        } else if c == ' ' || c == '\t' {
            Class::Space
        } else {
            Class::Punct
        };
        match &mut run {
            Some((current, len)) if *current == class => *len += 1,
            _ => {
                if let Some((previous, len)) = run.replace((class, 1)) {
                    tokens += cost(previous, len);
                }
            }
        }
    }
    if let Some((class, len)) = run {
        tokens += cost(class, len);
    }
    tokens
}
