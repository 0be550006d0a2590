use std::fmt;
use std::str::FromStr;

/// A stack's name: safe as a folder name, a RabbitMQ node name and part of AWS resource names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StackName(String);

#[derive(Debug, thiserror::Error)]
#[error(
    "invalid stack name {0:?}: use 1-32 lower-case letters, digits and dashes, starting with a letter or digit"
)]
pub struct InvalidStackName(pub String);

impl StackName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for StackName {
    type Err = InvalidStackName;
    fn from_str(s: &str) -> Result<Self, InvalidStackName> {
        let ok = (1..=32).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidStackName(s.to_owned()))
        }
    }
}

impl TryFrom<String> for StackName {
    type Error = InvalidStackName;
    fn try_from(s: String) -> Result<Self, InvalidStackName> {
        s.parse()
    }
}

impl From<StackName> for String {
    fn from(n: StackName) -> String {
        n.0
    }
}

impl fmt::Display for StackName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_path_characters_are_refused() {
        for bad in [
            "",
            "../etc",
            "a/b",
            "a b",
            "Dev",
            "-x",
            "x-",
            "a.b",
            &"x".repeat(33),
        ] {
            assert!(bad.parse::<StackName>().is_err(), "{bad:?}");
        }
        for good in ["default", "ci-42", "a"] {
            assert_eq!(good.parse::<StackName>().unwrap().as_str(), good);
        }
    }
}
