package ai.eddy.spark;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.spark.TaskContext;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF1;
import org.apache.spark.sql.types.DataTypes;

/**
 * The connector against real Spark, run by {@code spark-submit --class
 * ai.eddy.spark.ConnectorCheck} (scripts/spark-jvm-test.sh) on a local-cluster or standalone
 * master. Each check prints "ok <name>" or fails the application with what differed. Argument:
 * the rows of the all-types DataFrame (default 1,000,000); "--kill-executor" also kills an
 * executor's JVM in the middle of a write.
 */
public final class ConnectorCheck {
  private static final List<String> passed = new ArrayList<>();

  private static void check(boolean ok, String what) {
    if (!ok) {
      throw new AssertionError("FAILED: " + what);
    }
  }

  private static void ok(String name) {
    passed.add(name);
    System.out.println("ok " + name);
  }

  /** Every type a frame holds, nulls in each nullable column, a column name with a dot. */
  static Dataset<Row> allTypes(SparkSession spark, long rows, int partitions) {
    return spark.range(0, rows, 1, partitions).selectExpr(
        "id",
        "cast(id % 100 - 50 as tinyint) as b",
        "cast(id % 30000 as smallint) as s",
        "if(id % 7 = 0, null, cast(id * 3 as int)) as i",
        "cast(id as float) / 8 as f",
        "if(id % 11 = 0, null, id / 3.0d) as `prix.unité`",
        "cast(id / 7 as decimal(18, 4)) as dec",
        "id % 3 = 0 as flag",
        "if(id % 13 = 0, null, concat('name-', cast(id % 1000 as string))) as name",
        "date_add(date'2020-01-01', cast(id % 1000 as int)) as day",
        "timestamp_micros(1600000000000000 + id * 1000003) as ts",
        "cast(timestamp_micros(1600000000000000 + id * 7) as timestamp_ntz) as local_ts");
  }

  private static void sameRows(Dataset<Row> a, Dataset<Row> b, String what) {
    long missing = a.exceptAll(b).count();
    long extra = b.exceptAll(a).count();
    if (missing + extra > 0) {
      System.out.println("missing, e.g.: " + a.exceptAll(b).limit(2).collectAsList());
      System.out.println("extra, e.g.:   " + b.exceptAll(a).limit(2).collectAsList());
    }
    check(missing == 0 && extra == 0, what + ": " + missing + " rows missing and " + extra + " extra after the round trip");
  }

  public static void main(String[] args) throws Exception {
    long rows = 1_000_000;
    boolean killExecutor = false;
    for (String a : args) {
      if (a.equals("--kill-executor")) {
        killExecutor = true;
      } else {
        rows = Long.parseLong(a);
      }
    }
    SparkSession spark = SparkSession.builder().appName("eddy-connector-check").getOrCreate();
    if ("dynamic-allocation".equals(System.getenv("EDDY_CHECK_MODE"))) {
      // An application with dynamic allocation on: refused, saying what to do.
      String why = failure(() -> EddyContext.getOrCreate(spark, Map.of("port", "0")));
      check(why.contains("spark.dynamicAllocation.enabled") && why.contains("eddy.spark.allowDynamicAllocation"), "dynamic allocation refused: " + why);
      ok("dynamic allocation refused, naming the setting");
      System.out.println("ALL " + passed.size() + " CHECKS PASSED");
      spark.stop();
      return;
    }
    EddyContext ec = EddyContext.getOrCreate(spark, Map.of("port", "0", "timeout", "120"));
    try {
      System.out.println("cloud " + ec + " workers " + ec.workers());
      int executors = Math.max(1, ec.workers().size());

      // 1. Every type there and back unchanged, through EddyContext.
      Dataset<Row> df = allTypes(spark, rows, 2 * executors).cache();
      df.count();
      String id = ec.asFrame(df, "all_types");
      check(ec.rows(id) == rows, "frame rows " + ec.rows(id) + " != " + rows);
      Map<String, Object> conv = ec.lastConversion();
      check(((Number) conv.get("chunks")).intValue() == 2 * executors, "one chunk per partition: " + conv);
      Dataset<Row> back = ec.asSparkFrame(id);
      check(back.schema().equals(df.schema()), "schema back " + back.schema().simpleString() + " != " + df.schema().simpleString());
      check(back.rdd().getNumPartitions() == 2 * executors, "one partition per chunk");
      sameRows(df, back, "all types");
      ok("all types there and back (" + rows + " rows, " + conv + ")");

      // The stream port refuses a token made with another secret, and says so.
      CloudAccess access = ec.access();
      CloudAccess wrong = new CloudAccess(access.cloudName, "0".repeat(64), access.caPem, access.workers, access.rest);
      try (WorkerConnection conn = new WorkerConnection(wrong, access.workers.get(0))) {
        conn.sendHeader(Map.of("op", "get", "token", wrong.token(), "frame_id", id, "chunk", 0));
        String refusal = failure(() -> {
          try {
            conn.readAnswer("reading with another cloud's token");
          } catch (java.io.IOException e) {
            throw new RuntimeException(e);
          }
        });
        check(refusal.contains("refused"), "a token of another secret is refused: " + refusal);
      }
      ok("a worker refuses a stream with a token of another secret");

      // 2. The summary equals Spark's aggregates.
      JsonNode summary = Rest.JSON.readTree(ec.summary(id));
      Row agg = df.selectExpr("min(i)", "max(i)", "avg(i)", "count(i)", "avg(`prix.unité`)", "count(name)", "avg(dec)").first();
      for (JsonNode c : summary) {
        String label = c.get("label").asText();
        if (label.equals("i")) {
          check(c.get("min").asDouble() == agg.getInt(0) && c.get("max").asDouble() == agg.getInt(1), "min/max of i: " + c);
          check(Math.abs(c.get("mean").asDouble() - agg.getDouble(2)) < 1e-6 * Math.abs(agg.getDouble(2)), "mean of i: " + c);
          check(c.get("count").asLong() == agg.getLong(3) && c.get("missing").asLong() == rows - agg.getLong(3), "count of i: " + c);
        } else if (label.equals("prix.unité")) {
          check(Math.abs(c.get("mean").asDouble() - agg.getDouble(4)) < 1e-9 * Math.abs(agg.getDouble(4)), "mean of prix.unité: " + c);
        } else if (label.equals("name")) {
          check(c.get("missing").asLong() == rows - agg.getLong(5), "missing names: " + c);
        } else if (label.equals("dec")) {
          double mean = agg.getDecimal(6).doubleValue();
          check(Math.abs(c.get("mean").asDouble() - mean) < 1e-6 * Math.abs(mean), "mean of dec: " + c);
        }
      }
      ok("summary equals Spark's aggregates");

      // 3. The data source by name: a second frame, refused when it exists, replaced on overwrite.
      Dataset<Row> small = df.where("id < 1000").repartition(3);
      small.write().format("eddy").mode("append").option("categorical", "name").save("by_source");
      Dataset<Row> smallBack = spark.read().format("eddy").load("by_source");
      check(smallBack.count() == 1000, "by_source rows");
      sameRows(small, smallBack, "through format(\"eddy\")");
      String refused = failure(() -> small.write().format("eddy").mode("append").save("by_source"));
      check(refused.contains("exists"), "a second write to a frame is refused: " + refused);
      df.limit(10).write().format("eddy").mode("overwrite").save("by_source");
      check(ec.rows("by_source") == 10, "overwrite replaced the frame");
      ok("format(\"eddy\") write, read, refuse, overwrite");

      // 4. Unsupported types refused naming the column, before any job.
      Dataset<Row> nested = spark.range(3).selectExpr("id", "array(id, id) as pair", "named_struct('a', id) as st");
      String why = failure(() -> ec.asFrame(nested, "nested"));
      check(why.contains("\"pair\"") && why.contains("\"st\"") && why.contains("to_json"), "nested columns refused by name: " + why);
      check(why.startsWith("EddyException: "), "the refusal reaches the caller as an EddyException: " + why);
      check(!ec.frames().contains("nested"), "nothing left of a refused conversion");
      ok("unsupported types refused naming the column");

      // 5. Empty DataFrames: no rows, and no partitions at all.
      String empty = ec.asFrame(df.limit(0), "empty");
      check(ec.rows(empty) == 0, "empty frame rows");
      Dataset<Row> emptyBack = ec.asSparkFrame(empty);
      check(emptyBack.schema().equals(df.schema()) && emptyBack.count() == 0, "empty frame back: " + emptyBack.schema().simpleString());
      Dataset<Row> noPartitions = spark.createDataFrame(spark.sparkContext().emptyRDD(scala.reflect.ClassTag$.MODULE$.apply(Row.class)), df.schema());
      String none = ec.asFrame(noPartitions, "no_partitions");
      check(ec.rows(none) == 0 && ec.asSparkFrame(none).schema().equals(df.schema()), "a DataFrame without partitions");
      ok("empty DataFrames");

      // 6. A frame imported from a file reads back with Spark's types.
      String csv = System.getenv("EDDY_CHECK_CSV");
      if (csv != null) {
        String imported = ec.importFile(csv);
        Dataset<Row> fromFile = ec.asSparkFrame(imported);
        // A local path: for Spark too, whose default file system may be HDFS (on YARN).
        String forSpark = csv.startsWith("/") ? "file://" + csv : csv;
        Dataset<Row> bySpark = spark.read().option("header", "true").option("inferSchema", "true").csv(forSpark);
        check(fromFile.count() == bySpark.count(), "imported rows");
        Row ours = fromFile.selectExpr("sum(i1)", "sum(f1)", "count(c10)").first();
        Row theirs = bySpark.selectExpr("sum(i1)", "sum(f1)", "count(c10)").first();
        check(ours.getLong(0) == ((Number) theirs.get(0)).longValue(), "sum(i1) " + ours + " vs Spark's " + theirs);
        check(Math.abs(ours.getDouble(1) - theirs.getDouble(1)) <= 1e-9 * Math.abs(theirs.getDouble(1)), "sum(f1) " + ours + " vs " + theirs);
        check(ours.getLong(2) == theirs.getLong(2), "count(c10) " + ours + " vs " + theirs);
        ok("imported frame read (" + fromFile.schema().simpleString() + ")");
      }

      // 7. An executor killed in the middle of a write: the task runs again elsewhere and the
      // frame is exact.
      boolean localMode = spark.sparkContext().master().startsWith("local[") || spark.sparkContext().master().equals("local");
      if (killExecutor && localMode) {
        System.out.println("skipped: an executor killed mid-write (local mode has no executor apart from the driver)");
      }
      if (killExecutor && !localMode) {
        spark.udf().register("halt_first_attempt", (UDF1<Long, Boolean>) v -> {
          TaskContext t = TaskContext.get();
          if (t.partitionId() == 1 && t.attemptNumber() == 0 && v == 3_200L) {
            Runtime.getRuntime().halt(1); // the executor's JVM ends here, its worker with it
          }
          return true;
        }, DataTypes.BooleanType);
        java.util.concurrent.atomic.AtomicInteger executorsLost = new java.util.concurrent.atomic.AtomicInteger();
        spark.sparkContext().addSparkListener(new org.apache.spark.scheduler.SparkListener() {
          @Override
          public void onTaskEnd(org.apache.spark.scheduler.SparkListenerTaskEnd end) {
            if (end.reason() instanceof org.apache.spark.ExecutorLostFailure) {
              executorsLost.incrementAndGet();
            }
          }
        });
        Dataset<Row> source = allTypes(spark, 4_000, 2).cache();
        source.count();
        String survived = ec.asFrame(source.where("halt_first_attempt(id + 0)"), "after_kill");
        check(executorsLost.get() >= 1, "a task failed with its executor: " + executorsLost.get());
        sameRows(source, ec.asSparkFrame(survived), "after an executor was killed mid-write");
        ok("an executor killed mid-write leaves the frame exact");
      }
      System.out.println("ALL " + passed.size() + " CHECKS PASSED");
    } finally {
      ec.stop();
      spark.stop();
    }
  }

  private static String failure(Runnable r) {
    try {
      r.run();
    } catch (RuntimeException e) {
      StringBuilder text = new StringBuilder();
      for (Throwable t = e; t != null; t = t.getCause()) {
        text.append(t.getClass().getSimpleName()).append(": ").append(t.getMessage()).append(" | ");
      }
      return text.toString();
    }
    throw new AssertionError("FAILED: expected a failure");
  }
}
