//! Hadoop's XML configuration files: `<configuration><property><name>k</name><value>v</value>`.
//! Later files override earlier ones (core-site, then yarn-site), and `${other.key}` in a value
//! is replaced by that key's value, as Hadoop's `Configuration` does.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::{YarnError, YarnResult};

/// Hadoop's default scheduler port (`yarn.resourcemanager.scheduler.address`).
const DEFAULT_SCHEDULER_PORT: u16 = 8030;

/// Hadoop's default ResourceManager client port (`yarn.resourcemanager.address`).
pub const DEFAULT_RM_PORT: u16 = 8032;

/// Merged key/value configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HadoopConf {
    values: BTreeMap<String, String>,
    /// The environment `${env.NAME}` references expand from.
    env: BTreeMap<String, String>,
}

impl HadoopConf {
    /// The configuration directory from `YARN_CONF_DIR` or `HADOOP_CONF_DIR` in `env`.
    pub fn dir_from_env(env: &HashMap<String, String>) -> YarnResult<PathBuf> {
        env.get("YARN_CONF_DIR")
            .or_else(|| env.get("HADOOP_CONF_DIR"))
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .ok_or(YarnError::NoConfDir)
    }

    /// Reads `core-site.xml`, `hdfs-site.xml` (HDFS settings a YARN client needs, such as
    /// the delegation token renewal interval) then `yarn-site.xml` from `dir` (any may be
    /// missing); `${env.NAME}` references expand from `env`.
    pub fn load(dir: &Path, env: &HashMap<String, String>) -> YarnResult<Self> {
        let mut conf = Self { values: BTreeMap::new(), env: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect() };
        for name in ["core-site.xml", "hdfs-site.xml", "yarn-site.xml"] {
            let file = dir.join(name);
            match std::fs::read_to_string(&file) {
                Ok(text) => conf.merge_xml(&text, &file.display().to_string())?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(YarnError::Config { file: file.display().to_string(), reason: e.to_string() }),
            }
        }
        Ok(conf)
    }

    /// Merges one file's properties over what is there.
    pub fn merge_xml(&mut self, text: &str, file: &str) -> YarnResult<()> {
        let doc = roxmltree::Document::parse(text).map_err(|e| YarnError::Config { file: file.into(), reason: e.to_string() })?;
        for property in doc.descendants().filter(|n| n.has_tag_name("property")) {
            let child = |tag: &str| property.children().find(|c| c.has_tag_name(tag)).map(|c| c.text().unwrap_or("").trim().to_string());
            match (child("name"), child("value")) {
                (Some(name), Some(value)) if !name.is_empty() => {
                    self.values.insert(name, value);
                }
                (name, _) => {
                    let at = doc.text_pos_at(property.range().start);
                    return Err(YarnError::Config {
                        file: file.into(),
                        reason: format!("line {}: a <property> without a <name> and a <value> (name: {name:?})", at.row),
                    });
                }
            }
        }
        Ok(())
    }

    /// A value with `${key}` references expanded (at most 20 levels, as Hadoop bounds it).
    pub fn get(&self, key: &str) -> Option<String> {
        let mut value = self.values.get(key)?.clone();
        for _ in 0..20 {
            let Some(start) = value.find("${") else { break };
            let Some(len) = value[start..].find('}') else { break };
            let name = &value[start + 2..start + len];
            let replacement = self.values.get(name).or_else(|| self.env.get(name.strip_prefix("env.").unwrap_or(name))).cloned();
            let Some(replacement) = replacement else { break };
            value.replace_range(start..start + len + 1, &replacement);
        }
        Some(value)
    }

    /// Sets a value (for command-line overrides and tests).
    pub fn set(&mut self, key: &str, value: &str) {
        self.values.insert(key.to_string(), value.to_string());
    }

    /// The ResourceManager addresses to try, in order: with HA
    /// (`yarn.resourcemanager.ha.enabled`), `yarn.resourcemanager.address.<id>` (or
    /// `yarn.resourcemanager.hostname.<id>:8032`) for each of `yarn.resourcemanager.ha.rm-ids`;
    /// otherwise `yarn.resourcemanager.address`, defaulting to
    /// `${yarn.resourcemanager.hostname}:8032` as Hadoop's yarn-default.xml does.
    pub fn resource_manager_addresses(&self) -> Vec<String> {
        let ha = self.get("yarn.resourcemanager.ha.enabled").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if ha {
            let ids = self.get("yarn.resourcemanager.ha.rm-ids").unwrap_or_default();
            let addrs: Vec<String> = ids
                .split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .filter_map(|id| {
                    self.get(&format!("yarn.resourcemanager.address.{id}"))
                        .or_else(|| self.get(&format!("yarn.resourcemanager.hostname.{id}")).map(|h| format!("{h}:{DEFAULT_RM_PORT}")))
                })
                .collect();
            if !addrs.is_empty() {
                return addrs;
            }
        }
        let host = self.get("yarn.resourcemanager.hostname").unwrap_or_else(|| "0.0.0.0".into());
        vec![self.get("yarn.resourcemanager.address").unwrap_or_else(|| format!("{host}:{DEFAULT_RM_PORT}"))]
    }

    /// The schedulers ApplicationMasters talk to, in the same order as
    /// [`HadoopConf::resource_manager_addresses`]: `yarn.resourcemanager.scheduler.address`
    /// (per RM id with HA), defaulting to the RM's host and port 8030.
    pub fn scheduler_addresses(&self) -> Vec<String> {
        let ha = self.get("yarn.resourcemanager.ha.enabled").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if ha {
            let ids = self.get("yarn.resourcemanager.ha.rm-ids").unwrap_or_default();
            return ids
                .split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .filter_map(|id| {
                    self.get(&format!("yarn.resourcemanager.scheduler.address.{id}")).or_else(|| {
                        self.get(&format!("yarn.resourcemanager.hostname.{id}")).map(|h| format!("{h}:{DEFAULT_SCHEDULER_PORT}"))
                    })
                })
                .collect();
        }
        let host = self.get("yarn.resourcemanager.hostname").unwrap_or_else(|| "0.0.0.0".into());
        vec![self.get("yarn.resourcemanager.scheduler.address").unwrap_or_else(|| format!("{host}:{DEFAULT_SCHEDULER_PORT}"))]
    }

    /// Whether the cluster runs Kerberos (`hadoop.security.authentication` = `kerberos`).
    pub fn kerberos(&self) -> bool {
        self.get("hadoop.security.authentication").is_some_and(|v| v.trim().eq_ignore_ascii_case("kerberos"))
    }

    /// The ResourceManager's Kerberos principal (`yarn.resourcemanager.principal`), with
    /// `_HOST` replaced by the host of `rm_address`, as Hadoop's clients do: the renewer of
    /// the delegation tokens an application carries.
    pub fn resource_manager_principal(&self, rm_address: &str) -> Option<String> {
        let principal = self.get("yarn.resourcemanager.principal")?;
        let host = rm_address.rsplit_once(':').map_or(rm_address, |(h, _)| h).to_ascii_lowercase();
        Some(principal.trim().replace("_HOST", &host))
    }

    /// `fs.defaultFS`, where staging directories live.
    pub fn default_fs(&self) -> Option<String> {
        self.get("fs.defaultFS").or_else(|| self.get("fs.default.name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YARN_SITE: &str = r#"<?xml version="1.0"?>
<configuration>
  <!-- a comment -->
  <property><name>yarn.resourcemanager.hostname</name><value>rm.example.com</value></property>
  <property>
    <name>yarn.resourcemanager.scheduler.address</name>
    <value>${yarn.resourcemanager.hostname}:8030</value>
  </property>
</configuration>"#;

    #[test]
    fn values_merge_and_references_expand() {
        let mut c = HadoopConf::default();
        c.merge_xml(YARN_SITE, "yarn-site.xml").unwrap();
        assert_eq!(c.get("yarn.resourcemanager.scheduler.address").as_deref(), Some("rm.example.com:8030"));
        assert_eq!(c.resource_manager_addresses(), ["rm.example.com:8032"]);
        c.set("yarn.resourcemanager.address", "rm2:9999");
        assert_eq!(c.resource_manager_addresses(), ["rm2:9999"]);
        assert_eq!(HadoopConf::default().resource_manager_addresses(), ["0.0.0.0:8032"]);
    }

    #[test]
    fn ha_resource_managers_are_listed_in_order() {
        let mut c = HadoopConf::default();
        c.set("yarn.resourcemanager.ha.enabled", "true");
        c.set("yarn.resourcemanager.ha.rm-ids", "rm1, rm2");
        c.set("yarn.resourcemanager.hostname.rm1", "a");
        c.set("yarn.resourcemanager.address.rm2", "b:1234");
        assert_eq!(c.resource_manager_addresses(), ["a:8032", "b:1234"]);
    }

    #[test]
    fn broken_files_name_the_file_and_line() {
        let mut c = HadoopConf::default();
        let err = c.merge_xml("<configuration><property><value>x</value></property></configuration>", "/etc/y.xml").unwrap_err();
        assert!(err.to_string().contains("/etc/y.xml") && err.to_string().contains("line 1"), "{err}");
        assert!(c.merge_xml("<configuration><property>", "/etc/z.xml").unwrap_err().to_string().contains("/etc/z.xml"));
    }
}
