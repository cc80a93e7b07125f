package ai.eddy.spark;

import org.apache.spark.sql.connector.read.InputPartition;

/** One chunk of a frame and the worker holding it. */
final class ChunkPartition implements InputPartition {
  private static final long serialVersionUID = 1L;
  final int chunk;
  final String ip;
  final int grpcPort;
  private final String host;

  ChunkPartition(int chunk, String ip, int grpcPort, String host) {
    this.chunk = chunk;
    this.ip = ip;
    this.grpcPort = grpcPort;
    this.host = host;
  }

  @Override
  public String[] preferredLocations() {
    return new String[] {host};
  }
}
