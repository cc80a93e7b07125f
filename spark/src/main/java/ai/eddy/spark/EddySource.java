package ai.eddy.spark;

import java.util.Map;
import org.apache.spark.sql.connector.catalog.Table;
import org.apache.spark.sql.connector.catalog.TableProvider;
import org.apache.spark.sql.connector.expressions.Transform;
import org.apache.spark.sql.sources.DataSourceRegister;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;

/**
 * The {@code eddy} data source: {@code spark.read.format("eddy").load(frameId)} reads a frame,
 * {@code df.write.format("eddy").mode("append").save(frameId)} writes a new one ({@code
 * overwrite} replaces it). Both use the cloud of {@link EddyContext#getOrCreate}.
 */
public final class EddySource implements TableProvider, DataSourceRegister {
  @Override
  public String shortName() {
    return "eddy";
  }

  static String frameId(Map<String, String> options) {
    CaseInsensitiveStringMap o = options instanceof CaseInsensitiveStringMap c ? c : new CaseInsensitiveStringMap(options);
    String id = o.getOrDefault("frame", o.get("path"));
    if (id == null || id.isBlank()) {
      throw new EddyException("name the frame: spark.read.format(\"eddy\").load(\"<frame id>\"), or .option(\"frame\", \"<frame id>\")");
    }
    return id;
  }

  /** Only reads ask: the frame's columns as Spark types. */
  @Override
  public StructType inferSchema(CaseInsensitiveStringMap options) {
    EddyContext ec = EddyContext.active();
    return Types.sparkSchema(ec.frameInfo(frameId(options)).get("columns"));
  }

  /** Writes pass the DataFrame's schema; reads the one inferred. */
  @Override
  public boolean supportsExternalMetadata() {
    return true;
  }

  @Override
  public Table getTable(StructType schema, Transform[] partitioning, Map<String, String> properties) {
    return new EddyTable(EddyContext.active(), frameId(properties), schema);
  }
}
