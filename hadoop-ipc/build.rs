//! Compiles our subset of Hadoop's `.proto` files with `protox` (pure Rust, no system `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/hadoop/common/rpc.proto", "proto/hadoop/hdfs/hdfs.proto", "proto/hadoop/yarn/yarn.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
