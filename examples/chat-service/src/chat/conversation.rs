//! Conversations in memory, per user, bounded.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use traced_llm::Message;

use super::topic::topic_of;
use crate::config::Limits;

/// Every user's conversations: at most [`Limits::max_conversations_per_user`] each (the least
/// recently used is forgotten first), of at most [`Limits::max_messages_per_conversation`]
/// messages. Users are bounded by the configured user list.
#[derive(Debug)]
pub struct Conversations {
    limits: Limits,
    by_user: Mutex<HashMap<String, VecDeque<Conversation>>>,
}

#[derive(Debug)]
struct Conversation {
    id: String,
    topic: String,
    messages: Vec<Message>,
}

/// One question about to be asked: what the model is sent, and what the events say.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Turn {
    /// The conversation, new or continued: the call's trace id.
    pub(crate) conversation_id: String,
    /// Derived from the conversation's first message.
    pub(crate) topic: String,
    /// The conversation so far with the new question last.
    pub(crate) messages: Vec<Message>,
}

impl Turn {
    /// Messages in the conversation, the new question included.
    pub(crate) fn message_count(&self) -> usize {
        self.messages.len()
    }
}

/// Why a question cannot be asked in that conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TurnError {
    /// The conversation is not this user's, or was forgotten.
    NotFound,
    /// The conversation holds its maximum of messages.
    Full(usize),
}

impl Conversations {
    /// An empty store with `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            by_user: Mutex::new(HashMap::new()),
        }
    }

    /// The limits the store keeps to.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The turn that asks `question` in `conversation_id` of `user_id`, or in a new
    /// conversation. Nothing is stored until [`Conversations::finish`].
    pub(crate) fn begin(
        &self,
        user_id: &str,
        conversation_id: Option<&str>,
        question: &str,
    ) -> Result<Turn, TurnError> {
        let by_user = self.lock();
        let Some(id) = conversation_id else {
            return Ok(Turn {
                conversation_id: uuid::Uuid::now_v7().hyphenated().to_string(),
                topic: topic_of(question),
                messages: vec![Message::user(question)],
            });
        };
        let conversation = by_user
            .get(user_id)
            .and_then(|conversations| conversations.iter().find(|c| c.id == id))
            .ok_or(TurnError::NotFound)?;
        // The question and its answer must both fit.
        if conversation.messages.len() + 2 > self.limits.max_messages_per_conversation {
            return Err(TurnError::Full(self.limits.max_messages_per_conversation));
        }
        let mut messages = conversation.messages.clone();
        messages.push(Message::user(question));
        Ok(Turn {
            conversation_id: conversation.id.clone(),
            topic: conversation.topic.clone(),
            messages,
        })
    }

    /// Stores `turn` with its `answer` (possibly cut short), as the user's most recent
    /// conversation.
    pub(crate) fn finish(&self, user_id: &str, turn: Turn, answer: String) {
        let mut by_user = self.lock();
        let conversations = by_user.entry(user_id.to_owned()).or_default();
        let existing = conversations
            .iter()
            .position(|c| c.id == turn.conversation_id)
            .and_then(|at| conversations.remove(at));
        let mut conversation = existing.unwrap_or_else(|| Conversation {
            id: turn.conversation_id.clone(),
            topic: turn.topic.clone(),
            messages: Vec::new(),
        });
        conversation.messages = turn.messages;
        conversation.messages.push(Message::assistant(answer));
        conversation
            .messages
            .truncate(self.limits.max_messages_per_conversation);
        conversations.push_front(conversation);
        conversations.truncate(self.limits.max_conversations_per_user);
    }

    /// Whether `conversation_id` is one of `user_id`'s.
    pub(crate) fn owns(&self, user_id: &str, conversation_id: &str) -> bool {
        self.lock()
            .get(user_id)
            .is_some_and(|conversations| conversations.iter().any(|c| c.id == conversation_id))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Conversation>>> {
        self.by_user
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
            .max_conversations_per_user(2)
            .max_messages_per_conversation(4)
    }

    #[test]
    fn a_conversation_grows_until_it_is_full() {
        let store = Conversations::new(limits());
        let first = store.begin("u", None, "Hello there").unwrap();
        assert_eq!(first.message_count(), 1);
        let id = first.conversation_id.clone();
        store.finish("u", first, "Hi!".into());

        let second = store.begin("u", Some(&id), "How are you?").unwrap();
        assert_eq!(second.message_count(), 3);
        assert_eq!(second.topic, "hello there");
        store.finish("u", second, "Fine.".into());

        assert_eq!(
            store.begin("u", Some(&id), "Again"),
            Err(TurnError::Full(4))
        );
    }

    #[test]
    fn another_users_conversation_is_not_found_and_the_oldest_is_forgotten() {
        let store = Conversations::new(limits());
        let mut ids = Vec::new();
        for question in ["one", "two", "three"] {
            let turn = store.begin("u", None, question).unwrap();
            ids.push(turn.conversation_id.clone());
            store.finish("u", turn, "ok".into());
        }
        assert_eq!(
            store.begin("v", Some(&ids[2]), "mine?"),
            Err(TurnError::NotFound)
        );
        assert!(!store.owns("u", &ids[0]));
        assert!(store.owns("u", &ids[1]) && store.owns("u", &ids[2]));
    }
}
