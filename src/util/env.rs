//! Environment variables, read the one way every builder reads them.

/// The variable's value without surrounding white space; unset, empty, blank or not unicode
/// counts as absent.
pub(crate) fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// Whether the variable is set at all, blank included: lets an error say "set but blank"
/// rather than "not set".
pub(crate) fn is_set(name: &str) -> bool {
    std::env::var(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_absent_and_values_are_trimmed() {
        // Names no other test uses.
        std::env::set_var("TRACED_LLM_UTIL_ENV_BLANK", "  ");
        std::env::set_var("TRACED_LLM_UTIL_ENV_VALUE", " v ");
        std::env::remove_var("TRACED_LLM_UTIL_ENV_UNSET");
        assert_eq!(var("TRACED_LLM_UTIL_ENV_BLANK"), None);
        assert!(is_set("TRACED_LLM_UTIL_ENV_BLANK"));
        assert_eq!(var("TRACED_LLM_UTIL_ENV_VALUE").as_deref(), Some("v"));
        assert_eq!(var("TRACED_LLM_UTIL_ENV_UNSET"), None);
        assert!(!is_set("TRACED_LLM_UTIL_ENV_UNSET"));
    }
}
