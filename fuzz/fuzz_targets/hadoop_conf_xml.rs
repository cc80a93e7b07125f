//! Hadoop XML configuration files (core-site.xml, yarn-site.xml) and what is read from them.
#![no_main]
use eddy_yarn_client::conf::HadoopConf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let mut conf = HadoopConf::default();
    if conf.merge_xml(text, "fuzz-site.xml").is_ok() {
        let _ = conf.resource_manager_addresses();
        let _ = conf.scheduler_addresses();
        let _ = conf.default_fs();
    }
});
