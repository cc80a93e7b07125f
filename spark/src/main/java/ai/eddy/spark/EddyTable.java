package ai.eddy.spark;

import java.util.EnumSet;
import java.util.Set;
import org.apache.spark.sql.connector.catalog.CatalogV2Util;
import org.apache.spark.sql.connector.catalog.Column;
import org.apache.spark.sql.connector.catalog.SupportsRead;
import org.apache.spark.sql.connector.catalog.SupportsWrite;
import org.apache.spark.sql.connector.catalog.TableCapability;
import org.apache.spark.sql.connector.read.ScanBuilder;
import org.apache.spark.sql.connector.write.LogicalWriteInfo;
import org.apache.spark.sql.connector.write.WriteBuilder;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;

/** One frame, as Spark's DataSource V2 sees it. */
final class EddyTable implements SupportsRead, SupportsWrite {
  private final EddyContext ec;
  private final String frameId;
  private final StructType schema;

  EddyTable(EddyContext ec, String frameId, StructType schema) {
    this.ec = ec;
    this.frameId = frameId;
    this.schema = schema;
  }

  @Override
  public String name() {
    return "eddy frame " + frameId;
  }

  /** Spark 4.0 still asks for it (abstract), though it prefers {@link #columns()}. */
  @Override
  @Deprecated
  public StructType schema() {
    return schema;
  }

  @Override
  public Column[] columns() {
    return CatalogV2Util.structTypeToV2Columns(schema);
  }

  @Override
  public Set<TableCapability> capabilities() {
    return EnumSet.of(TableCapability.BATCH_READ, TableCapability.BATCH_WRITE, TableCapability.TRUNCATE);
  }

  @Override
  public ScanBuilder newScanBuilder(CaseInsensitiveStringMap options) {
    return new ChunkScan(ec.access(), frameId, schema, ec.frameInfo(frameId));
  }

  @Override
  public WriteBuilder newWriteBuilder(LogicalWriteInfo info) {
    return new FrameWrite(ec, frameId, info.schema(), info.options());
  }
}
