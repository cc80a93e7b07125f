//! The NameNode's state: a tree of directories and files, files made of blocks, blocks placed
//! on DataNodes. Plain data and functions (no I/O); the IPC handler in `namenode.rs` wraps it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use eddy_hadoop_ipc::proto::common::TokenProto;
use eddy_hadoop_ipc::proto::hdfs::{
    hdfs_file_status_proto::FileType, DatanodeIdProto, DatanodeInfoProto, DirectoryListingProto, ExtendedBlockProto, FsPermissionProto,
    HdfsFileStatusProto, LocatedBlockProto, LocatedBlocksProto, StorageTypeProto,
};
use eddy_hadoop_ipc::server::RpcException;

use crate::datanode::BlockStore;

pub(crate) const FILE_NOT_FOUND: &str = "java.io.FileNotFoundException";
pub(crate) const ALREADY_EXISTS: &str = "org.apache.hadoop.fs.FileAlreadyExistsException";
pub(crate) const PARENT_NOT_DIRECTORY: &str = "org.apache.hadoop.fs.ParentNotDirectoryException";
pub(crate) const NOT_EMPTY: &str = "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException";
pub(crate) const IO_EXCEPTION: &str = "java.io.IOException";
pub(crate) const INVALID_PATH: &str = "org.apache.hadoop.fs.InvalidPathException";

pub(crate) type NsResult<T> = Result<T, RpcException>;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub id: u64,
    pub generation: u64,
    pub len: u64,
    /// Indexes into the DataNode list.
    pub replicas: Vec<usize>,
}

#[derive(Debug, Clone)]
pub(crate) struct FileNode {
    pub id: u64,
    pub blocks: Vec<Block>,
    pub block_size: u64,
    pub replication: u32,
    pub owner: String,
    pub mtime: u64,
    /// The client that holds the lease while the file is being written.
    pub writer: Option<String>,
}

impl FileNode {
    pub fn len(&self) -> u64 {
        self.blocks.iter().map(|b| b.len).sum()
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Inode {
    Dir { owner: String, mtime: u64 },
    File(FileNode),
}

/// Checks and normalises an absolute path: `/a//b/` becomes `/a/b`; `.` and `..` are refused.
pub(crate) fn normalize(src: &str) -> NsResult<String> {
    if !src.starts_with('/') {
        return Err(RpcException::new(INVALID_PATH, format!("Invalid path name {src}: paths must be absolute")));
    }
    let mut out = String::new();
    for part in src.split('/').filter(|p| !p.is_empty()) {
        if part == "." || part == ".." {
            return Err(RpcException::new(INVALID_PATH, format!("Invalid path name {src}")));
        }
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

fn name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

fn child_prefix(dir: &str) -> String {
    if dir == "/" {
        "/".to_string()
    } else {
        format!("{dir}/")
    }
}

/// What `create` is asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewFile<'a> {
    pub owner: &'a str,
    pub client: &'a str,
    pub overwrite: bool,
    pub create_parent: bool,
    pub replication: u32,
    pub block_size: u64,
}

/// Options the namespace is created with.
#[derive(Debug, Clone)]
pub(crate) struct NamespaceOptions {
    pub block_size: u64,
    pub write_replication: u32,
    pub listing_limit: usize,
}

#[derive(Debug)]
pub(crate) struct Namespace {
    pub options: NamespaceOptions,
    pub pool_id: String,
    pub datanodes: Vec<DatanodeIdProto>,
    pub stores: Vec<Arc<BlockStore>>,
    inodes: BTreeMap<String, Inode>,
    next_file_id: u64,
    next_block_id: u64,
    next_datanode: usize,
}

impl Namespace {
    pub fn new(options: NamespaceOptions, datanodes: Vec<DatanodeIdProto>, stores: Vec<Arc<BlockStore>>) -> Self {
        let mut inodes = BTreeMap::new();
        inodes.insert("/".to_string(), Inode::Dir { owner: "hdfs".into(), mtime: now_ms() });
        Self {
            options,
            pool_id: "BP-eddy-test-127.0.0.1".into(),
            datanodes,
            stores,
            inodes,
            next_file_id: 16386, // HDFS starts user inode ids above its reserved range
            next_block_id: 1 << 30,
            next_datanode: 0,
        }
    }

    pub fn get(&self, path: &str) -> Option<&Inode> {
        self.inodes.get(path)
    }

    fn file_mut(&mut self, path: &str) -> NsResult<&mut FileNode> {
        match self.inodes.get_mut(path) {
            Some(Inode::File(f)) => Ok(f),
            Some(Inode::Dir { .. }) => Err(RpcException::new(FILE_NOT_FOUND, format!("Path is not a file: {path}"))),
            None => Err(RpcException::new(FILE_NOT_FOUND, format!("File does not exist: {path}"))),
        }
    }

    /// Direct children of `dir`, in name order.
    pub fn children(&self, dir: &str) -> Vec<(String, &Inode)> {
        let prefix = child_prefix(dir);
        self.inodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.len() > prefix.len() && !k[prefix.len()..].contains('/'))
            .map(|(k, v)| (k.clone(), v))
            .collect()
    }

    /// `path` and everything under it.
    fn subtree(&self, path: &str) -> Vec<String> {
        let prefix = child_prefix(path);
        let mut keys = vec![path.to_string()];
        keys.extend(self.inodes.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)).map(|(k, _)| k.clone()));
        keys
    }

    pub fn status(&self, path: &str, inode: &Inode, local_name: &[u8]) -> HdfsFileStatusProto {
        match inode {
            Inode::Dir { owner, mtime } => HdfsFileStatusProto {
                file_type: FileType::IsDir as i32,
                path: local_name.to_vec(),
                length: 0,
                permission: FsPermissionProto { perm: 0o755 },
                owner: owner.clone(),
                group: "supergroup".into(),
                modification_time: *mtime,
                access_time: 0,
                children_num: Some(self.children(path).len() as i32),
                ..Default::default()
            },
            Inode::File(f) => HdfsFileStatusProto {
                file_type: FileType::IsFile as i32,
                path: local_name.to_vec(),
                length: f.len(),
                permission: FsPermissionProto { perm: 0o644 },
                owner: f.owner.clone(),
                group: "supergroup".into(),
                modification_time: f.mtime,
                access_time: f.mtime,
                block_replication: Some(f.replication),
                blocksize: Some(f.block_size),
                file_id: Some(f.id),
                children_num: Some(0),
                ..Default::default()
            },
        }
    }

    pub fn file_info(&self, src: &str) -> NsResult<Option<HdfsFileStatusProto>> {
        let path = normalize(src)?;
        Ok(self.inodes.get(&path).map(|inode| self.status(&path, inode, b"")))
    }

    pub fn listing(&self, src: &str, start_after: &[u8]) -> NsResult<Option<DirectoryListingProto>> {
        let path = normalize(src)?;
        let Some(inode) = self.inodes.get(&path) else { return Ok(None) };
        if let Inode::File(_) = inode {
            // Hadoop lists a file as itself, with an empty local name.
            return Ok(Some(DirectoryListingProto { partial_listing: vec![self.status(&path, inode, b"")], remaining_entries: 0 }));
        }
        let after = String::from_utf8_lossy(start_after).to_string();
        let children: Vec<_> = self.children(&path).into_iter().filter(|(k, _)| name(k) > after.as_str()).collect();
        let limit = self.options.listing_limit.max(1);
        let remaining = children.len().saturating_sub(limit) as u32;
        let partial = children.iter().take(limit).map(|(k, inode)| self.status(k, inode, name(k).as_bytes())).collect();
        Ok(Some(DirectoryListingProto { partial_listing: partial, remaining_entries: remaining }))
    }

    fn datanode_info(&self, index: usize) -> DatanodeInfoProto {
        DatanodeInfoProto {
            id: self.datanodes[index].clone(),
            capacity: Some(1 << 40),
            remaining: Some(1 << 40),
            location: Some("/default-rack".into()),
            ..Default::default()
        }
    }

    fn located(&self, block: &Block, offset: u64) -> LocatedBlockProto {
        let n = block.replicas.len();
        LocatedBlockProto {
            b: ExtendedBlockProto {
                pool_id: self.pool_id.clone(),
                block_id: block.id,
                generation_stamp: block.generation,
                num_bytes: Some(block.len),
            },
            offset,
            locs: block.replicas.iter().map(|&i| self.datanode_info(i)).collect(),
            corrupt: false,
            // An empty token: this test cluster runs without block access tokens.
            block_token: TokenProto::default(),
            is_cached: vec![false; n],
            storage_types: vec![StorageTypeProto::Disk as i32; n],
            storage_i_ds: block.replicas.iter().map(|i| format!("DS-test-{i}")).collect(),
        }
    }

    pub fn block_locations(&self, src: &str, offset: u64, length: u64) -> NsResult<LocatedBlocksProto> {
        let path = normalize(src)?;
        let file = match self.inodes.get(&path) {
            Some(Inode::File(f)) => f,
            Some(Inode::Dir { .. }) => return Err(RpcException::new(FILE_NOT_FOUND, format!("Path is not a file: {path}"))),
            None => return Err(RpcException::new(FILE_NOT_FOUND, format!("File does not exist: {path}"))),
        };
        let end = offset.saturating_add(length);
        let mut blocks = Vec::new();
        let mut pos = 0u64;
        for b in &file.blocks {
            if pos < end && pos + b.len > offset || (b.len == 0 && pos >= offset && pos < end) {
                blocks.push(self.located(b, pos));
            }
            pos += b.len;
        }
        let last_offset = pos - file.blocks.last().map(|b| b.len).unwrap_or(0);
        Ok(LocatedBlocksProto {
            file_length: file.len(),
            blocks,
            under_construction: file.writer.is_some(),
            last_block: file.blocks.last().map(|b| self.located(b, last_offset)),
            is_last_block_complete: file.writer.is_none(),
        })
    }

    fn require_parent_dir(&mut self, path: &str, create_parent: bool, owner: &str) -> NsResult<()> {
        let Some(parent) = parent(path) else { return Ok(()) };
        match self.inodes.get(parent) {
            Some(Inode::Dir { .. }) => Ok(()),
            Some(Inode::File(_)) => Err(RpcException::new(PARENT_NOT_DIRECTORY, format!("Parent path is not a directory: {parent}"))),
            None if create_parent => self.mkdirs(parent, owner, true),
            None => Err(RpcException::new(FILE_NOT_FOUND, format!("Parent directory doesn't exist: {parent}"))),
        }
    }

    /// Creates a directory; its parents too with `create_parent`, else the parent must exist.
    pub fn mkdirs(&mut self, src: &str, owner: &str, create_parent: bool) -> NsResult<()> {
        let path = normalize(src)?;
        if !create_parent {
            self.require_parent_dir(&path, false, owner)?;
        }
        let mut at = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            at.push('/');
            at.push_str(part);
            match self.inodes.get(&at) {
                Some(Inode::Dir { .. }) => {}
                Some(Inode::File(_)) => {
                    return Err(RpcException::new(PARENT_NOT_DIRECTORY, format!("Path is not a directory: {at}")));
                }
                None => {
                    self.inodes.insert(at.clone(), Inode::Dir { owner: owner.to_string(), mtime: now_ms() });
                }
            }
        }
        Ok(())
    }

    pub fn create(&mut self, src: &str, new: NewFile<'_>) -> NsResult<HdfsFileStatusProto> {
        let NewFile { owner, client, overwrite, create_parent, replication, block_size } = new;
        let path = normalize(src)?;
        match self.inodes.get(&path) {
            Some(Inode::Dir { .. }) => return Err(RpcException::new(ALREADY_EXISTS, format!("{path} already exists as a directory"))),
            Some(Inode::File(_)) if !overwrite => {
                return Err(RpcException::new(ALREADY_EXISTS, format!("{path} for client {client} already exists")))
            }
            Some(Inode::File(_)) => {
                self.delete(&path, false)?;
            }
            None => {}
        }
        self.require_parent_dir(&path, create_parent, owner)?;
        let id = self.next_file_id;
        self.next_file_id += 1;
        let file = FileNode {
            id,
            blocks: Vec::new(),
            block_size: if block_size == 0 { self.options.block_size } else { block_size },
            replication: replication.clamp(1, self.datanodes.len() as u32),
            owner: owner.to_string(),
            mtime: now_ms(),
            writer: Some(client.to_string()),
        };
        let inode = Inode::File(file);
        let status = self.status(&path, &inode, b"");
        self.inodes.insert(path, inode);
        Ok(status)
    }

    /// Allocates the next block of a file being written, on DataNodes not excluded.
    pub fn add_block(
        &mut self,
        src: &str,
        client: &str,
        previous: Option<&ExtendedBlockProto>,
        excluded: &[String],
    ) -> NsResult<LocatedBlockProto> {
        let path = normalize(src)?;
        let datanodes = self.datanodes.len();
        let candidates: Vec<usize> = (0..datanodes)
            .map(|k| (self.next_datanode + k) % datanodes)
            .filter(|&i| !excluded.contains(&self.datanodes[i].datanode_uuid))
            .collect();
        let id = self.next_block_id;
        let file = self.file_mut(&path)?;
        if file.writer.as_deref() != Some(client) {
            return Err(RpcException::new(
                "org.apache.hadoop.hdfs.server.namenode.LeaseExpiredException",
                format!("No lease on {path}: the file is not open for writing by {client}"),
            ));
        }
        if let (Some(prev), Some(last)) = (previous, file.blocks.last_mut()) {
            if prev.block_id == last.id {
                last.len = prev.num_bytes.unwrap_or(last.len);
            }
        }
        let replication = file.replication as usize;
        if candidates.len() < replication {
            return Err(RpcException::new(
                IO_EXCEPTION,
                format!("File {path} could only be written to {} of the {replication} minReplication nodes", candidates.len()),
            ));
        }
        let replicas: Vec<usize> = candidates.into_iter().take(replication).collect();
        let block = Block { id, generation: 1001, len: 0, replicas };
        file.blocks.push(block.clone());
        let offset = file.len();
        self.next_block_id += 1;
        self.next_datanode = (self.next_datanode + 1) % datanodes.max(1);
        Ok(self.located(&block, offset))
    }

    pub fn complete(&mut self, src: &str, client: &str, last: Option<&ExtendedBlockProto>) -> NsResult<bool> {
        let path = normalize(src)?;
        let file = self.file_mut(&path)?;
        if file.writer.as_deref() != Some(client) {
            // Completing twice (a retried call) is fine once the file is closed.
            return Ok(file.writer.is_none());
        }
        if let (Some(last), Some(block)) = (last, file.blocks.last_mut()) {
            if last.block_id == block.id {
                block.len = last.num_bytes.unwrap_or(block.len);
            }
        }
        file.writer = None;
        file.mtime = now_ms();
        Ok(true)
    }

    pub fn delete(&mut self, src: &str, recursive: bool) -> NsResult<bool> {
        let path = normalize(src)?;
        if path == "/" {
            return Err(RpcException::new(IO_EXCEPTION, "Cannot delete the root directory"));
        }
        if !self.inodes.contains_key(&path) {
            return Ok(false);
        }
        let keys = self.subtree(&path);
        if keys.len() > 1 && !recursive {
            return Err(RpcException::new(NOT_EMPTY, format!("`{path} is non empty': Directory is not empty")));
        }
        for k in keys {
            if let Some(Inode::File(f)) = self.inodes.remove(&k) {
                for b in f.blocks {
                    for r in b.replicas {
                        self.stores[r].remove(b.id);
                    }
                }
            }
        }
        Ok(true)
    }

    pub fn rename(&mut self, src: &str, dst: &str, overwrite: bool) -> NsResult<()> {
        let src = normalize(src)?;
        let dst = normalize(dst)?;
        if !self.inodes.contains_key(&src) {
            return Err(RpcException::new(FILE_NOT_FOUND, format!("rename source {src} is not found.")));
        }
        if dst == src {
            return Ok(());
        }
        if dst.starts_with(&child_prefix(&src)) {
            return Err(RpcException::new(IO_EXCEPTION, format!("Rename destination {dst} is a directory or file under source {src}")));
        }
        match parent(&dst).and_then(|p| self.inodes.get(p)) {
            Some(Inode::Dir { .. }) => {}
            Some(Inode::File(_)) => {
                return Err(RpcException::new(PARENT_NOT_DIRECTORY, format!("rename destination parent of {dst} is a file.")))
            }
            None => return Err(RpcException::new(FILE_NOT_FOUND, format!("rename destination parent of {dst} not found."))),
        }
        if self.inodes.contains_key(&dst) {
            if !overwrite {
                return Err(RpcException::new(ALREADY_EXISTS, format!("rename destination {dst} already exists.")));
            }
            self.delete(&dst, false)?;
        }
        for k in self.subtree(&src) {
            if let Some(inode) = self.inodes.remove(&k) {
                self.inodes.insert(format!("{dst}{}", &k[src.len()..]), inode);
            }
        }
        Ok(())
    }

    /// Places a complete file directly (test set-up): blocks of the namespace's block size,
    /// each on `replication` DataNodes, rotating so that consecutive blocks start on different nodes.
    pub fn seed(&mut self, src: &str, data: &bytes::Bytes, replication: usize, owner: &str) -> NsResult<()> {
        let path = normalize(src)?;
        let block_size = self.options.block_size;
        let new = NewFile { owner, client: "seed", overwrite: true, create_parent: true, replication: replication as u32, block_size };
        self.create(&path, new)?;
        let datanodes = self.datanodes.len();
        let block_size = self.options.block_size as usize;
        let mut blocks = Vec::new();
        for (k, start) in (0..data.len()).step_by(block_size.max(1)).enumerate() {
            let chunk = data.slice(start..(start + block_size).min(data.len()));
            let id = self.next_block_id;
            self.next_block_id += 1;
            let replicas: Vec<usize> = (0..replication.min(datanodes)).map(|j| (k + j) % datanodes).collect();
            for &r in &replicas {
                self.stores[r].insert(id, chunk.clone());
            }
            blocks.push(Block { id, generation: 1001, len: chunk.len() as u64, replicas });
        }
        let file = self.file_mut(&path)?;
        file.blocks = blocks;
        file.writer = None;
        Ok(())
    }

    /// Reads a complete file back from the first replica of each block that has it.
    pub fn read(&self, src: &str) -> Option<Vec<u8>> {
        let path = normalize(src).ok()?;
        let Some(Inode::File(f)) = self.inodes.get(&path) else { return None };
        let mut out = Vec::with_capacity(f.len() as usize);
        for b in &f.blocks {
            let data = b.replicas.iter().find_map(|&r| self.stores[r].get(b.id))?;
            out.extend_from_slice(&data[..(b.len as usize).min(data.len())]);
        }
        Some(out)
    }

    /// Every file under `dir` (recursively), as full paths.
    pub fn files_under(&self, dir: &str) -> Vec<String> {
        let Ok(path) = normalize(dir) else { return Vec::new() };
        self.subtree(&path).into_iter().filter(|k| matches!(self.inodes.get(k), Some(Inode::File(_)))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns() -> Namespace {
        let stores = (0..3).map(|_| Arc::new(BlockStore::default())).collect();
        let dns = (0..3).map(|i| DatanodeIdProto { datanode_uuid: format!("dn{i}"), ..Default::default() }).collect();
        Namespace::new(NamespaceOptions { block_size: 4, write_replication: 1, listing_limit: 2 }, dns, stores)
    }

    #[test]
    fn paths_are_normalised_and_checked() {
        assert_eq!(normalize("/a//b/").unwrap(), "/a/b");
        assert_eq!(normalize("/").unwrap(), "/");
        assert!(normalize("a/b").is_err());
        assert!(normalize("/a/../b").is_err());
    }

    #[test]
    fn seeded_files_are_split_into_rotating_replicated_blocks() {
        let mut ns = ns();
        ns.seed("/d/f", &bytes::Bytes::from_static(b"0123456789"), 2, "u").unwrap();
        let located = ns.block_locations("/d/f", 0, u64::MAX).unwrap();
        assert_eq!(located.file_length, 10);
        let firsts: Vec<_> = located.blocks.iter().map(|b| b.locs[0].id.datanode_uuid.clone()).collect();
        assert_eq!(firsts, ["dn0", "dn1", "dn2"]);
        assert!(located.blocks.iter().all(|b| b.locs.len() == 2));
        assert_eq!(ns.read("/d/f").unwrap(), b"0123456789");
        // A range in the middle only returns the blocks it touches.
        let mid = ns.block_locations("/d/f", 5, 2).unwrap();
        assert_eq!(mid.blocks.len(), 1);
        assert_eq!(mid.blocks[0].offset, 4);
    }

    #[test]
    fn listing_pages_and_rename_moves_subtrees() {
        let mut ns = ns();
        for f in ["/d/a", "/d/b", "/d/c", "/d/sub/x"] {
            ns.seed(f, &bytes::Bytes::from_static(b"x"), 1, "u").unwrap();
        }
        let first = ns.listing("/d", b"").unwrap().unwrap();
        assert_eq!(first.partial_listing.len(), 2);
        assert_eq!(first.remaining_entries, 2);
        let second = ns.listing("/d", b"b").unwrap().unwrap();
        let names: Vec<_> = second.partial_listing.iter().map(|s| String::from_utf8_lossy(&s.path).to_string()).collect();
        assert_eq!(names, ["c", "sub"]);
        ns.rename("/d", "/e", false).unwrap();
        assert!(ns.get("/d/sub/x").is_none());
        assert_eq!(ns.read("/e/sub/x").unwrap(), b"x");
        assert!(ns.delete("/e", false).is_err());
        assert!(ns.delete("/e", true).unwrap());
        assert!(ns.files_under("/").is_empty());
    }
}
