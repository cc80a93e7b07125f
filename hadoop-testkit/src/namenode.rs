//! The test NameNode: `ClientNamenodeProtocol` calls decoded from Hadoop IPC and answered from
//! the [`Namespace`]. Methods hdfs-native needs to stat, list, read and write are served; any
//! other method gets Hadoop's `RpcNoSuchMethodException`, so a client relying on one fails loudly.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use eddy_hadoop_ipc::proto::hdfs::*;
use eddy_hadoop_ipc::server::{reply, Call, CallResult, RpcException, RpcHandler};
use tracing::debug;

use crate::namespace::{Namespace, NewFile, IO_EXCEPTION};

pub use eddy_hadoop_ipc::protocols::CLIENT_NAMENODE as CLIENT_PROTOCOL;

#[derive(Debug)]
pub(crate) struct NameNodeHandler {
    pub namespace: Arc<Mutex<Namespace>>,
    pub calls: Arc<Mutex<Vec<String>>>,
}

impl NameNodeHandler {
    fn ns(&self) -> Result<std::sync::MutexGuard<'_, Namespace>, RpcException> {
        self.namespace.lock().map_err(|_| RpcException::new(IO_EXCEPTION, "namespace lock poisoned"))
    }

    fn serve(&self, call: &Call) -> CallResult {
        call.expect_protocol(CLIENT_PROTOCOL)?;
        let user = if call.user.is_empty() { "nobody" } else { call.user.as_str() };
        match call.method.as_str() {
            "getFileInfo" => {
                let q: GetFileInfoRequestProto = call.decode()?;
                reply(&GetFileInfoResponseProto { fs: self.ns()?.file_info(&q.src)? })
            }
            "getListing" => {
                let q: GetListingRequestProto = call.decode()?;
                reply(&GetListingResponseProto { dir_list: self.ns()?.listing(&q.src, &q.start_after)? })
            }
            "getBlockLocations" => {
                let q: GetBlockLocationsRequestProto = call.decode()?;
                reply(&GetBlockLocationsResponseProto { locations: Some(self.ns()?.block_locations(&q.src, q.offset, q.length)?) })
            }
            "getServerDefaults" => {
                let ns = self.ns()?;
                reply(&GetServerDefaultsResponseProto {
                    server_defaults: FsServerDefaultsProto {
                        block_size: ns.options.block_size,
                        bytes_per_checksum: 512,
                        write_packet_size: 64 * 1024,
                        replication: ns.options.write_replication,
                        file_buffer_size: 4096,
                        encrypt_data_transfer: Some(false),
                        trash_interval: Some(0),
                        checksum_type: Some(ChecksumTypeProto::ChecksumCrc32c as i32),
                    },
                })
            }
            "create" => {
                let q: CreateRequestProto = call.decode()?;
                let overwrite = q.create_flag & CreateFlagProto::Overwrite as u32 != 0;
                let new = NewFile {
                    owner: user,
                    client: &q.client_name,
                    overwrite,
                    create_parent: q.create_parent,
                    // Write pipelines here are one DataNode long.
                    replication: q.replication.min(self.ns()?.options.write_replication),
                    block_size: q.block_size,
                };
                let status = self.ns()?.create(&q.src, new)?;
                reply(&CreateResponseProto { fs: Some(status) })
            }
            "addBlock" => {
                let q: AddBlockRequestProto = call.decode()?;
                let excluded: Vec<String> = q.exclude_nodes.iter().map(|d| d.id.datanode_uuid.clone()).collect();
                let block = self.ns()?.add_block(&q.src, &q.client_name, q.previous.as_ref(), &excluded)?;
                reply(&AddBlockResponseProto { block })
            }
            "complete" => {
                let q: CompleteRequestProto = call.decode()?;
                reply(&CompleteResponseProto { result: self.ns()?.complete(&q.src, &q.client_name, q.last.as_ref())? })
            }
            "mkdirs" => {
                let q: MkdirsRequestProto = call.decode()?;
                self.ns()?.mkdirs(&q.src, user, q.create_parent)?;
                reply(&MkdirsResponseProto { result: true })
            }
            "delete" => {
                let q: DeleteRequestProto = call.decode()?;
                reply(&DeleteResponseProto { result: self.ns()?.delete(&q.src, q.recursive)? })
            }
            "rename2" => {
                let q: Rename2RequestProto = call.decode()?;
                self.ns()?.rename(&q.src, &q.dst, q.overwrite_dest)?;
                reply(&Rename2ResponseProto {})
            }
            "renewLease" => {
                let _: RenewLeaseRequestProto = call.decode()?;
                reply(&RenewLeaseResponseProto {})
            }
            "fsync" => {
                let _: FsyncRequestProto = call.decode()?;
                reply(&FsyncResponseProto {})
            }
            _ => Err(call.no_such_method("the test NameNode serves what hdfs-native needs to stat, list, read and write")),
        }
    }
}

#[async_trait]
impl RpcHandler for NameNodeHandler {
    async fn call(&self, call: Call) -> CallResult {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call.method.clone());
        }
        let result = self.serve(&call);
        debug!(method = call.method, user = call.user, ok = result.is_ok(), "NameNode call");
        result
    }
}
