//! The Java protocol names Hadoop's servers dispatch on (the `declaringClassProtocolName` of
//! every request and the `protocol` of the connection context), from each protocol's
//! `@ProtocolInfo`. One place, so that clients and test servers cannot drift apart.

/// HDFS NameNode, client side (`ClientNamenodeProtocolPB`).
pub const CLIENT_NAMENODE: &str = "org.apache.hadoop.hdfs.protocol.ClientProtocol";
/// YARN ResourceManager, client side.
pub const APPLICATION_CLIENT: &str = "org.apache.hadoop.yarn.api.ApplicationClientProtocolPB";
