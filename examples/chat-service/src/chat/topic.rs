//! A conversation's topic: the first message's first few words that say something.

/// Words that say nothing about a topic.
const FILLER: &[&str] = &[
    "a", "about", "an", "and", "are", "can", "could", "do", "does", "for", "how", "i", "in", "is",
    "it", "me", "my", "of", "on", "please", "should", "the", "to", "what", "when", "where",
    "which", "who", "why", "will", "with", "would", "you", "your",
];

/// At most this many words make a topic.
const TOPIC_WORDS: usize = 4;

/// The topic of a conversation that starts with `message`: its first four words that are not
/// filler, lower-cased, without punctuation; `general` when none is left.
///
/// ```
/// use chat_service::topic_of;
///
/// assert_eq!(topic_of("What should I pack for Lisbon in April?"), "pack lisbon april");
/// assert_eq!(topic_of("Hi!"), "hi");
/// assert_eq!(topic_of("?!"), "general");
/// ```
pub fn topic_of(message: &str) -> String {
    let words: Vec<String> = message
        .split_whitespace()
        .map(|word| {
            word.chars()
                .filter(|c| c.is_alphanumeric() || *c == '-')
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|word| !word.is_empty() && !FILLER.contains(&word.as_str()))
        .take(TOPIC_WORDS)
        .collect();
    if words.is_empty() {
        "general".to_owned()
    } else {
        words.join(" ")
    }
}
