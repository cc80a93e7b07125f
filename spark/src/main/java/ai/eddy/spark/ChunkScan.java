package ai.eddy.spark;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.connector.read.Batch;
import org.apache.spark.sql.connector.read.InputPartition;
import org.apache.spark.sql.connector.read.PartitionReaderFactory;
import org.apache.spark.sql.connector.read.Scan;
import org.apache.spark.sql.connector.read.ScanBuilder;
import org.apache.spark.sql.types.StructType;

/** A read of a whole frame: one input partition per chunk, preferring the host that holds it. */
final class ChunkScan implements ScanBuilder, Scan, Batch {
  private final CloudAccess access;
  private final String frameId;
  private final StructType schema;
  private final JsonNode info;

  ChunkScan(CloudAccess access, String frameId, StructType schema, JsonNode info) {
    this.access = access;
    this.frameId = frameId;
    this.schema = schema;
    this.info = info;
    if (schema.fields().length != info.get("columns").size()) {
      throw new EddyException("frame " + frameId + " has " + info.get("columns").size() + " columns, the schema given "
          + schema.fields().length + "; leave the schema out, it is the frame's");
    }
  }

  @Override
  public Scan build() {
    return this;
  }

  @Override
  public StructType readSchema() {
    return schema;
  }

  @Override
  public String description() {
    return "Eddy frame " + frameId + " (" + info.path("chunks").size() + " chunks)";
  }

  @Override
  public Batch toBatch() {
    return this;
  }

  @Override
  public InputPartition[] planInputPartitions() {
    Map<String, String> hostOf = new java.util.HashMap<>();
    for (CloudAccess.Worker w : access.workers) {
      hostOf.put(w.ip + ":" + w.grpcPort, w.host);
    }
    List<InputPartition> parts = new ArrayList<>();
    for (JsonNode c : info.get("chunks")) {
      JsonNode node = c.get("node");
      String ip = node.get("ip").asText();
      int port = node.get("grpc_port").asInt();
      String host = hostOf.getOrDefault(ip + ":" + port, ip);
      parts.add(new ChunkPartition(c.get("index").asInt(), ip, port, host));
    }
    return parts.toArray(new InputPartition[0]);
  }

  @Override
  public PartitionReaderFactory createReaderFactory() {
    return new ChunkReaderFactory(access, frameId, Types.ipcSchema(Types.arrowSchema(schema, "UTC")));
  }
}
