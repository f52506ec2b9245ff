//! [`PerMethod`]: a setting per method name, with a default for the rest.

use std::collections::HashMap;

use weft_core::faststr::FastStr;

/// A value per method name (`Context::method`), with a default for methods
/// not listed. Every configurable layer of this crate takes its settings as a
/// `PerMethod`, and a single value converts into one that applies to all
/// methods.
///
/// ```
/// use std::time::Duration;
/// use weft_middleware::PerMethod;
///
/// let timeouts = PerMethod::new(Some(Duration::from_millis(100)))
///     .with("scan", Some(Duration::from_secs(2)))
///     .with("stream", None);
/// assert_eq!(*timeouts.get("get"), Some(Duration::from_millis(100)));
/// assert_eq!(*timeouts.get("scan"), Some(Duration::from_secs(2)));
/// assert_eq!(*timeouts.get("stream"), None);
/// ```
#[derive(Debug, Clone, Default)]
pub struct PerMethod<T> {
    default: T,
    methods: HashMap<FastStr, T>,
}

impl<T> PerMethod<T> {
    /// `default` for every method.
    pub fn new(default: T) -> Self {
        PerMethod {
            default,
            methods: HashMap::new(),
        }
    }

    /// Use `value` for `method` instead of the default.
    #[must_use]
    pub fn with(mut self, method: impl Into<FastStr>, value: T) -> Self {
        self.set(method, value);
        self
    }

    /// Use `value` for `method` instead of the default.
    pub fn set(&mut self, method: impl Into<FastStr>, value: T) -> &mut Self {
        self.methods.insert(method.into(), value);
        self
    }

    /// The value for `method`: its own, or the default.
    pub fn get(&self, method: &str) -> &T {
        self.methods.get(method).unwrap_or(&self.default)
    }

    /// The value for methods not listed.
    pub fn default_value(&self) -> &T {
        &self.default
    }

    /// Transform every value, keeping the method names.
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> PerMethod<U> {
        PerMethod {
            default: f(self.default),
            methods: self.methods.into_iter().map(|(k, v)| (k, f(v))).collect(),
        }
    }
}

impl<T> From<T> for PerMethod<T> {
    fn from(default: T) -> Self {
        PerMethod::new(default)
    }
}
