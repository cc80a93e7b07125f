//! The test HDFS against a real HDFS client (hdfs-native): every call below crosses Hadoop IPC
//! and DataTransferProtocol on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use bytes::Bytes;
use eddy_hadoop_ipc::client::IpcClient;
use eddy_hadoop_ipc::proto::hdfs::{
    GetBlockLocationsRequestProto, GetBlockLocationsResponseProto, GetFileInfoRequestProto, GetFileInfoResponseProto,
};
use eddy_hadoop_testkit::{MiniDfs, CLIENT_PROTOCOL};
use hdfs_native::{client::WriteOptions, ClientBuilder, HdfsError};

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2654435761).rotate_left(seed as u32) as u8).collect()
}

fn client(dfs: &MiniDfs) -> hdfs_native::Client {
    ClientBuilder::new().with_url(dfs.url()).with_user("alice").build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_multi_block_files_from_several_datanodes() {
    let dfs = MiniDfs::builder().datanodes(3).block_size(64 * 1024).replication(2).start().await.unwrap();
    let data = pattern(300_000, 3); // 5 blocks, the last one partial
    dfs.put("/data/big.bin", data.clone());
    assert_eq!(dfs.block_count("/data/big.bin"), 5);

    let client = client(&dfs);
    let status = client.get_file_info("/data/big.bin").await.unwrap();
    assert_eq!(status.length, data.len());
    assert_eq!(status.blocksize, Some(64 * 1024));
    assert!(!status.isdir);

    let reader = client.read("/data/big.bin").await.unwrap();
    assert_eq!(reader.file_length(), data.len());
    let all = reader.read_range(0, data.len()).await.unwrap();
    assert!(all[..] == data[..], "whole-file read differs");
    // A range that starts mid-chunk and crosses a block boundary.
    let part = reader.read_range(65_000, 3_000).await.unwrap();
    assert_eq!(&part[..], &data[65_000..68_000]);

    let served: Vec<u64> = dfs.datanode_stores().iter().map(|s| s.bytes_served()).collect();
    assert!(served.iter().filter(|&&b| b > 0).count() >= 2, "reads came from one DataNode only: {served:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_datanode_is_read_around_through_its_replica() {
    let dfs = MiniDfs::builder().datanodes(3).block_size(16 * 1024).replication(2).start().await.unwrap();
    let data = pattern(100_000, 5);
    dfs.put("/f", data.clone());
    dfs.stop_datanode(0);
    let client = client(&dfs);
    let reader = client.read("/f").await.unwrap();
    let all = reader.read_range(0, data.len()).await.unwrap();
    assert!(all[..] == data[..]);
    assert_eq!(dfs.datanode_stores()[0].bytes_served(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_through_block_pipelines_and_read_back() {
    let dfs = MiniDfs::builder().datanodes(2).block_size(64 * 1024).start().await.unwrap();
    let client = client(&dfs);
    let data = pattern(200_000, 7);
    let mut writer = client.create("/out/part-0", WriteOptions::default()).await.unwrap();
    for chunk in data.chunks(33_333) {
        writer.write_bytes(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    writer.close().await.unwrap();

    assert_eq!(dfs.block_count("/out/part-0"), 4);
    assert!(dfs.read("/out/part-0").unwrap() == data, "the DataNodes hold different bytes");
    assert_eq!(dfs.owner("/out/part-0").as_deref(), Some("alice"));
    let back = client.read("/out/part-0").await.unwrap().read_range(0, data.len()).await.unwrap();
    assert!(back[..] == data[..]);

    // Existing files are not overwritten unless asked.
    let Err(err) = client.create("/out/part-0", WriteOptions::default()).await else { panic!("overwrote without being asked") };
    assert!(matches!(err, HdfsError::AlreadyExists(_)), "{err:?}");
    let mut again = client.create("/out/part-0", WriteOptions { overwrite: true, ..Default::default() }).await.unwrap();
    again.write_bytes(Bytes::from_static(b"short")).await.unwrap();
    again.close().await.unwrap();
    assert_eq!(dfs.read("/out/part-0").unwrap(), b"short");

    // An empty file has no blocks and reads as empty.
    let mut empty = client.create("/out/empty", WriteOptions::default()).await.unwrap();
    empty.close().await.unwrap();
    assert_eq!(client.get_file_info("/out/empty").await.unwrap().length, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_and_namespace_operations() {
    let dfs = MiniDfs::builder().listing_limit(2).start().await.unwrap();
    for name in ["a.csv", "b.csv", "c.csv", "_SUCCESS", "sub/d.csv"] {
        dfs.put(&format!("/t/{name}"), b"x\n".to_vec());
    }
    let client = client(&dfs);
    let mut names: Vec<String> = client.list_status("/t", false).await.unwrap().into_iter().map(|s| s.path).collect();
    names.sort();
    assert_eq!(names, ["/t/_SUCCESS", "/t/a.csv", "/t/b.csv", "/t/c.csv", "/t/sub"]);
    let recursive = client.list_status("/t", true).await.unwrap();
    assert!(recursive.iter().any(|s| s.path == "/t/sub/d.csv"));

    client.mkdirs("/m/n", 0o755, true).await.unwrap();
    assert!(client.get_file_info("/m/n").await.unwrap().isdir);
    client.rename("/t/a.csv", "/m/n/a.csv", false).await.unwrap();
    assert_eq!(dfs.read("/m/n/a.csv").unwrap(), b"x\n");
    assert!(matches!(client.get_file_info("/t/a.csv").await.unwrap_err(), HdfsError::FileNotFound(_)));
    assert!(client.delete("/t", true).await.unwrap());
    assert!(dfs.files_under("/t").is_empty());
    let Err(err) = client.read("/nope").await else { panic!("read a missing file") };
    assert!(matches!(err, HdfsError::FileNotFound(_) | HdfsError::RPCError(..)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_ipc_client_calls_the_namenode() {
    let dfs = MiniDfs::builder().block_size(1024).start().await.unwrap();
    dfs.put("/x/y", pattern(3000, 1));
    let addr = dfs.namenode_addr().to_string();
    let ipc = IpcClient::connect(&addr, CLIENT_PROTOCOL, "bob", Duration::from_secs(10)).await.unwrap();
    let info: GetFileInfoResponseProto = ipc.call("getFileInfo", &GetFileInfoRequestProto { src: "/x/y".into() }).await.unwrap();
    assert_eq!(info.fs.unwrap().length, 3000);
    let blocks: GetBlockLocationsResponseProto =
        ipc.call("getBlockLocations", &GetBlockLocationsRequestProto { src: "/x/y".into(), offset: 0, length: 3000 }).await.unwrap();
    assert_eq!(blocks.locations.unwrap().blocks.len(), 3);
    let missing: GetFileInfoResponseProto = ipc.call("getFileInfo", &GetFileInfoRequestProto { src: "/none".into() }).await.unwrap();
    assert!(missing.fs.is_none());
    let err = ipc
        .call::<_, GetBlockLocationsResponseProto>(
            "getBlockLocations",
            &GetBlockLocationsRequestProto { src: "/none".into(), offset: 0, length: 1 },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("java.io.FileNotFoundException"), "{err}");
    let err = ipc.call::<_, GetFileInfoResponseProto>("getStats", &GetFileInfoRequestProto { src: "/".into() }).await.unwrap_err();
    assert!(err.to_string().contains("RpcNoSuchMethodException"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_ports_is_survived() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dfs = MiniDfs::builder().start().await.unwrap();
    dfs.put("/ok", b"fine".to_vec());
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(dfs.namenode_addr()).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await.unwrap();
    }
    let client = client(&dfs);
    assert_eq!(client.read("/ok").await.unwrap().read_range(0, 4).await.unwrap(), Bytes::from_static(b"fine"));
}
