package ai.eddy.spark;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.ipc.ArrowStreamReader;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.connector.read.InputPartition;
import org.apache.spark.sql.connector.read.PartitionReader;
import org.apache.spark.sql.connector.read.PartitionReaderFactory;
import org.apache.spark.sql.util.ArrowUtils;
import org.apache.spark.sql.vectorized.ArrowColumnVector;
import org.apache.spark.sql.vectorized.ColumnVector;
import org.apache.spark.sql.vectorized.ColumnarBatch;

/** Reads chunks as Spark columnar batches over the Arrow vectors the worker sent. */
final class ChunkReaderFactory implements PartitionReaderFactory {
  private static final long serialVersionUID = 1L;
  private final CloudAccess access;
  private final String frameId;
  /** The Spark schema's Arrow types (IPC, base64): the worker casts to them. */
  private final String ipcSchema;

  ChunkReaderFactory(CloudAccess access, String frameId, String ipcSchema) {
    this.access = access;
    this.frameId = frameId;
    this.ipcSchema = ipcSchema;
  }

  @Override
  public boolean supportColumnarReads(InputPartition partition) {
    return true;
  }

  @Override
  public PartitionReader<InternalRow> createReader(InputPartition partition) {
    throw new UnsupportedOperationException("Eddy chunks are read as columnar batches");
  }

  @Override
  public PartitionReader<ColumnarBatch> createColumnarReader(InputPartition partition) {
    return new ChunkReader((ChunkPartition) partition);
  }

  private final class ChunkReader implements PartitionReader<ColumnarBatch> {
    private final WorkerConnection conn;
    private final BufferAllocator allocator;
    private final ArrowStreamReader reader;
    private ColumnarBatch batch;

    ChunkReader(ChunkPartition part) {
      CloudAccess.Worker worker = new CloudAccess.Worker(-1, part.ip, part.grpcPort, null, null);
      conn = new WorkerConnection(access, worker);
      allocator = ArrowUtils.rootAllocator().newChildAllocator("eddy-read-" + frameId + "-" + part.chunk, 0, Long.MAX_VALUE);
      String what = "reading chunk " + part.chunk + " of " + frameId;
      try {
        Map<String, Object> header = new LinkedHashMap<>();
        header.put("op", "get");
        header.put("token", access.token());
        header.put("frame_id", frameId);
        header.put("chunk", part.chunk);
        header.put("schema", ipcSchema);
        conn.sendHeader(header);
        conn.readAnswer(what);
      } catch (IOException e) {
        close();
        throw new EddyException(what + " from Eddy " + worker + " failed: " + e.getMessage(), e);
      } catch (RuntimeException e) {
        close();
        throw e;
      }
      reader = new ArrowStreamReader(conn.input(), allocator);
    }

    @Override
    public boolean next() throws IOException {
      if (!reader.loadNextBatch()) {
        return false;
      }
      VectorSchemaRoot root = reader.getVectorSchemaRoot();
      if (batch == null) {
        // The reader loads every batch into the same vectors: one set of wrappers serves all.
        List<ColumnVector> vectors = root.getFieldVectors().stream().map(ArrowColumnVector::new).collect(Collectors.toList());
        batch = new ColumnarBatch(vectors.toArray(new ColumnVector[0]));
      }
      batch.setNumRows(root.getRowCount());
      return true;
    }

    @Override
    public ColumnarBatch get() {
      return batch;
    }

    @Override
    public void close() {
      try {
        if (reader != null) {
          reader.close();
        }
      } catch (IOException ignored) {
        // the connection goes below anyway
      }
      conn.close();
      allocator.close();
    }
  }
}
