package ai.eddy.spark;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.spark.sql.connector.write.BatchWrite;
import org.apache.spark.sql.connector.write.DataWriterFactory;
import org.apache.spark.sql.connector.write.PhysicalWriteInfo;
import org.apache.spark.sql.connector.write.SupportsTruncate;
import org.apache.spark.sql.connector.write.Write;
import org.apache.spark.sql.connector.write.WriteBuilder;
import org.apache.spark.sql.connector.write.WriterCommitMessage;
import org.apache.spark.sql.internal.SQLConf;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;

/**
 * A DataFrame written as a new frame. Tasks stage one chunk per partition; the driver commits
 * the chunks of the attempts Spark kept ({@code POST /3/Frames/{id}/commit}), which registers
 * the frame on every node and drops the chunks of other attempts. On failure the staged chunks
 * are swept and no frame is left.
 */
final class FrameWrite implements WriteBuilder, SupportsTruncate, Write, BatchWrite {
  private final EddyContext ec;
  private final String frameId;
  private final StructType schema;
  private final List<String> categorical;
  private boolean overwrite;
  /**
   * The DataFrame's own nullability ({@code t}/{@code f} per column): Spark hands a write the
   * optimised plan's schema, where a column it proved free of nulls is not nullable, and the
   * frame should come back with the schema the DataFrame had.
   */
  static final String NULLABLE_OPTION = "eddy.nullable";

  static String nullability(StructType schema) {
    StringBuilder s = new StringBuilder();
    for (StructField f : schema.fields()) {
      s.append(f.nullable() ? 't' : 'f');
    }
    return s.toString();
  }

  FrameWrite(EddyContext ec, String frameId, StructType schema, CaseInsensitiveStringMap options) {
    this.ec = ec;
    this.frameId = frameId;
    String nullable = options.getOrDefault(NULLABLE_OPTION, "");
    if (nullable.length() == schema.fields().length) {
      StructField[] fields = schema.fields().clone();
      for (int k = 0; k < fields.length; k++) {
        fields[k] = new StructField(fields[k].name(), fields[k].dataType(), nullable.charAt(k) == 't', fields[k].metadata());
      }
      schema = new StructType(fields);
    }
    this.schema = schema;
    String listed = options.getOrDefault("categorical", "");
    this.categorical = listed.isBlank() ? List.of() : Arrays.stream(listed.split(",")).map(String::strip).toList();
    Types.checkConvertible(schema, categorical);
  }

  @Override
  public WriteBuilder truncate() {
    overwrite = true;
    return this;
  }

  @Override
  public Write build() {
    return this;
  }

  @Override
  public String description() {
    return "Eddy frame " + frameId;
  }

  @Override
  public BatchWrite toBatch() {
    if (ec.frameExists(frameId)) {
      if (!overwrite) {
        throw new EddyException("frame " + frameId + " exists, and frames are not appended to: write with mode(\"overwrite\") "
            + "to replace it, or under another id");
      }
      ec.delete(frameId);
    }
    return this;
  }

  private ChunkWriterFactory factory() {
    return new ChunkWriterFactory(ec.access(), frameId, schema, categorical, SQLConf.get().sessionLocalTimeZone());
  }

  @Override
  public DataWriterFactory createBatchWriterFactory(PhysicalWriteInfo info) {
    return factory();
  }

  @Override
  public void commit(WriterCommitMessage[] messages) {
    List<StagedChunk> staged = new ArrayList<>();
    for (WriterCommitMessage m : messages) {
      staged.add((StagedChunk) m);
    }
    try {
      if (staged.isEmpty()) {
        // No partitions: one empty chunk carries the columns.
        ChunkWriterFactory.ChunkWriter w = factory().driverWriter();
        try {
          staged.add((StagedChunk) w.commit());
        } finally {
          w.close();
        }
      }
      ObjectNode body = Rest.JSON.createObjectNode();
      ArrayNode chunks = body.putArray("chunks");
      JsonNode columns = null;
      int local = 0;
      for (StagedChunk s : staged) {
        JsonNode r = Rest.JSON.readTree(s.reply);
        columns = columns == null ? r.get("columns") : columns;
        ObjectNode c = chunks.addObject();
        c.put("index", r.get("chunk").asInt());
        c.set("node", r.get("node"));
        c.put("rows", r.get("rows").asLong());
        c.put("bytes", r.get("bytes").asLong());
        local += s.local ? 1 : 0;
      }
      body.set("columns", columns);
      body.putArray("sources").add("Spark DataFrame");
      JsonNode frame = ec.rest().post(Rest.framePath(frameId) + "/commit", body).get("frame");
      ec.noteConversion(frameId, frame, staged.size(), local);
    } catch (IOException e) {
      abort(messages);
      throw new EddyException("committing frame " + frameId + " failed: " + e.getMessage(), e);
    } catch (RuntimeException e) {
      abort(messages);
      throw e;
    }
  }

  @Override
  public void abort(WriterCommitMessage[] messages) {
    try {
      ec.rest().delete(Rest.framePath(frameId));
    } catch (EddyException ignored) {
      // not registered: the commit's sweep of staged chunks ran anyway
    }
  }
}
