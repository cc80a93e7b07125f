//! The process environment, read once by a binary and handed to the libraries as a value.
//!
//! Libraries never call `std::env::var`: what a node does depends only on what its binary
//! gave it, tests can hand any environment in, and every variable a node reads is found from
//! its binary's `main`.

use std::collections::HashMap;

use crate::keys::{self, Key};

/// A snapshot of environment variables (those with UTF-8 names and values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    vars: HashMap<String, String>,
}

impl Environment {
    /// This process's environment; for binaries' `main`.
    pub fn of_process() -> Self {
        Self { vars: std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect() }
    }

    /// The value of `name`, if set (empty values included).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The value of a configuration key (or its H2O alias), if set to something.
    pub fn key(&self, key: &Key) -> Option<&str> {
        keys::lookup(&self.vars, key)
    }

    /// Every variable, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The variables as a map.
    pub fn as_map(&self) -> &HashMap<String, String> {
        &self.vars
    }

    /// The user HDFS and YARN see: `HADOOP_USER_NAME`, else the login name (`USER`), else `eddy`.
    pub fn hadoop_user(&self) -> String {
        self.non_empty("HADOOP_USER_NAME").or_else(|| self.non_empty("USER")).unwrap_or("eddy").to_string()
    }

    /// The login name (`USER`), else `user`.
    pub fn login_user(&self) -> String {
        self.non_empty("USER").unwrap_or("user").to_string()
    }

    /// The log filter a user asked for: `EDDY_LOG`, else `RUST_LOG`.
    pub fn log_filter(&self) -> Option<String> {
        self.non_empty("EDDY_LOG").or_else(|| self.non_empty("RUST_LOG")).map(str::to_string)
    }

    /// This environment with `vars` set (over any of the same name): command-line flags that
    /// stand for environment keys.
    pub fn with(&self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut out = self.clone();
        out.vars.extend(vars);
        out
    }

    /// The [`keys::FORWARDED_TO_WORKERS`] settings this environment has, as (name, value).
    pub fn forwarded_to_workers(&self) -> Vec<(&'static str, String)> {
        keys::FORWARDED_TO_WORKERS.iter().filter_map(|k| Some((k.name, self.get(k.name)?.to_string()))).collect()
    }

    fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Environment {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self { vars: iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }
}

impl From<HashMap<String, String>> for Environment {
    fn from(vars: HashMap<String, String>) -> Self {
        Self { vars }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_fall_back_in_hadoops_order() {
        let env: Environment = [("HADOOP_USER_NAME", "hdfs"), ("USER", "ann")].into_iter().collect();
        assert_eq!(env.hadoop_user(), "hdfs");
        let env: Environment = [("HADOOP_USER_NAME", ""), ("USER", "ann")].into_iter().collect();
        assert_eq!((env.hadoop_user().as_str(), env.login_user().as_str()), ("ann", "ann"));
        assert_eq!(Environment::default().hadoop_user(), "eddy");
    }

    #[test]
    fn forwarded_settings_are_only_the_listed_ones() {
        let env: Environment = [("EDDY_S3_ENDPOINT", "http://127.0.0.1:8333"), ("EDDY_PORT", "1")].into_iter().collect();
        assert_eq!(env.forwarded_to_workers(), vec![("EDDY_S3_ENDPOINT", "http://127.0.0.1:8333".to_string())]);
    }
}
