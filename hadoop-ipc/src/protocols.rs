//! The Java protocol names Hadoop's servers dispatch on (the `declaringClassProtocolName` of
//! every request and the `protocol` of the connection context), from each protocol's
//! `@ProtocolInfo`. One place, so that clients and test servers cannot drift apart.

/// HDFS NameNode, client side (`ClientNamenodeProtocolPB`).
pub const CLIENT_NAMENODE: &str = "org.apache.hadoop.hdfs.protocol.ClientProtocol";
/// YARN ResourceManager, client side.
pub const APPLICATION_CLIENT: &str = "org.apache.hadoop.yarn.api.ApplicationClientProtocolPB";
/// YARN ResourceManager scheduler side, spoken by ApplicationMasters (AMRMToken required).
pub const APPLICATION_MASTER: &str = "org.apache.hadoop.yarn.api.ApplicationMasterProtocolPB";
/// YARN NodeManager, spoken by ApplicationMasters to start and stop containers (NMToken required).
pub const CONTAINER_MANAGEMENT: &str = "org.apache.hadoop.yarn.api.ContainerManagementProtocolPB";
