package ai.eddy.spark;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.arrow.vector.ipc.ArrowStreamWriter;
import org.apache.spark.SparkEnv;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.connector.write.DataWriter;
import org.apache.spark.sql.connector.write.DataWriterFactory;
import org.apache.spark.sql.connector.write.WriterCommitMessage;
import org.apache.spark.sql.execution.arrow.ArrowWriter;
import org.apache.spark.sql.types.StructType;

/** Stages each partition as one chunk on a worker of its executor (or host). */
final class ChunkWriterFactory implements DataWriterFactory {
  private static final long serialVersionUID = 1L;
  /** Rows per Arrow batch sent, as the workers gather them before storing. */
  private static final int BATCH_ROWS = 64 * 1024;
  /** A batch is sent early once it holds this much (long strings). */
  private static final long BATCH_BYTES = 32L << 20;

  private final CloudAccess access;
  private final String frameId;
  private final StructType schema;
  private final List<String> categorical;
  private final String timeZone;

  ChunkWriterFactory(CloudAccess access, String frameId, StructType schema, List<String> categorical, String timeZone) {
    this.access = access;
    this.frameId = frameId;
    this.schema = schema;
    this.categorical = categorical;
    this.timeZone = timeZone;
  }

  @Override
  public DataWriter<InternalRow> createWriter(int partitionId, long taskId) {
    return new ChunkWriter(partitionId);
  }

  /** A writer run on the driver: the one empty chunk of a DataFrame without partitions. */
  ChunkWriter driverWriter() {
    return new ChunkWriter(0);
  }

  final class ChunkWriter implements DataWriter<InternalRow> {
    private final int partition;
    private final WorkerConnection conn;
    private final boolean local;
    private final ArrowWriter rows;
    private final ArrowStreamWriter stream;
    private final WorkerConnection.FramedChannel channel;
    private int pending;

    ChunkWriter(int partition) {
      this.partition = partition;
      SparkEnv env = SparkEnv.get();
      String executorId = env == null ? null : env.executorId();
      String host = env == null ? null : env.blockManager().blockManagerId().host();
      String hostname;
      try {
        hostname = InetAddress.getLocalHost().getHostName();
      } catch (UnknownHostException e) {
        hostname = null;
      }
      CloudAccess.Worker worker = access.workerFor(partition, executorId, host, hostname);
      local = worker.isOn(host, hostname);
      conn = new WorkerConnection(access, worker);
      try {
        Map<String, Object> header = new LinkedHashMap<>();
        header.put("op", "put");
        header.put("token", access.token());
        header.put("frame_id", frameId);
        header.put("chunk", partition);
        header.put("categorical", categorical);
        conn.sendHeader(header);
        rows = ArrowWriter.create(schema, timeZone, true, false);
        channel = conn.framedChannel();
        stream = new ArrowStreamWriter(rows.root(), null, channel);
        stream.start();
      } catch (IOException e) {
        conn.close();
        throw failure(e);
      }
    }

    private EddyException failure(Exception e) {
      // A worker that refuses a put says why before it closes: read that if it came.
      try {
        conn.readAnswer("writing chunk " + partition + " of " + frameId);
      } catch (EddyException refused) {
        return refused;
      } catch (IOException | RuntimeException ignored) {
        // no answer: the connection's own error says what happened
      }
      return new EddyException("writing chunk " + partition + " of " + frameId + " to Eddy " + conn.worker + " failed: " + e.getMessage(), e);
    }

    @Override
    public void write(InternalRow row) throws IOException {
      rows.write(row);
      pending++;
      if (pending >= BATCH_ROWS || ((pending & 1023) == 0 && rows.sizeInBytes() >= BATCH_BYTES)) {
        send();
      }
    }

    private void send() {
      rows.finish();
      try {
        stream.writeBatch();
      } catch (IOException e) {
        throw failure(e);
      }
      rows.reset();
      pending = 0;
    }

    @Override
    public WriterCommitMessage commit() throws IOException {
      if (pending > 0) {
        send();
      }
      JsonNode answer;
      try {
        stream.end();
        channel.finish();
        answer = conn.readAnswer("writing chunk " + partition + " of " + frameId);
      } catch (IOException e) {
        throw failure(e);
      }
      return new StagedChunk(Rest.JSON.writeValueAsString(answer.get("reply")), local);
    }

    @Override
    public void abort() {
      // The worker sees the stream break off and stages nothing.
      conn.close();
    }

    @Override
    public void close() {
      conn.close();
      rows.root().close();
    }
  }
}
