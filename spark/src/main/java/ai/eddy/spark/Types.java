package ai.eddy.spark;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.channels.Channels;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.arrow.vector.ipc.WriteChannel;
import org.apache.arrow.vector.ipc.message.MessageSerializer;
import org.apache.arrow.vector.types.pojo.Schema;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.DecimalType;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.util.ArrowUtils;

/** Spark's types and a frame's columns, both ways; the same rules as the Python context. */
final class Types {
  private Types() {}

  /** The Spark schema of a frame's columns: their source types where the frame kept them. */
  static StructType sparkSchema(JsonNode columns) {
    List<StructField> fields = new ArrayList<>();
    for (JsonNode c : columns) {
      String type = c.path("type").asText();
      String arrow = c.path("arrow_type").asText("");
      DataType spark;
      switch (type) {
        case "int":
          spark = switch (arrow) {
            case "Int8" -> DataTypes.ByteType;
            case "Int16" -> DataTypes.ShortType;
            case "Int32" -> DataTypes.IntegerType;
            default -> DataTypes.LongType;
          };
          break;
        case "real":
          if (arrow.startsWith("Decimal128(")) {
            String[] ps = arrow.substring("Decimal128(".length(), arrow.length() - 1).split(",");
            spark = DataTypes.createDecimalType(Integer.parseInt(ps[0].strip()), Integer.parseInt(ps[1].strip()));
          } else {
            spark = arrow.equals("Float32") ? DataTypes.FloatType : DataTypes.DoubleType;
          }
          break;
        case "bool":
          spark = DataTypes.BooleanType;
          break;
        case "time":
          if (arrow.equals("Date32")) {
            spark = DataTypes.DateType;
          } else if (arrow.startsWith("Timestamp(") && !arrow.contains(",")) {
            spark = DataTypes.TimestampNTZType; // a zone-less time from Spark
          } else {
            spark = DataTypes.TimestampType; // with a zone, or imported (epoch milliseconds)
          }
          break;
        default:
          spark = DataTypes.StringType;
      }
      fields.add(DataTypes.createStructField(c.path("name").asText(), spark, !c.path("not_null").asBoolean(false)));
    }
    return DataTypes.createStructType(fields);
  }

  private static boolean kept(DataType t) {
    return t.equals(DataTypes.ByteType) || t.equals(DataTypes.ShortType) || t.equals(DataTypes.IntegerType) || t.equals(DataTypes.LongType)
        || t.equals(DataTypes.FloatType) || t.equals(DataTypes.DoubleType) || t instanceof DecimalType || t.equals(DataTypes.BooleanType)
        || t.equals(DataTypes.StringType) || t.equals(DataTypes.DateType) || t.equals(DataTypes.TimestampType)
        || t.equals(DataTypes.TimestampNTZType);
  }

  /**
   * Refuses, before any Spark job, a DataFrame a frame cannot hold: every refused column named
   * with what to do, duplicate names, categoricals that are not string columns.
   */
  static void checkConvertible(StructType schema, List<String> categorical) {
    List<String> problems = new ArrayList<>();
    Map<String, Integer> counts = new HashMap<>();
    Map<String, DataType> kinds = new HashMap<>();
    for (StructField f : schema.fields()) {
      counts.merge(f.name(), 1, Integer::sum);
      kinds.put(f.name(), f.dataType());
      if (!kept(f.dataType())) {
        String col = "col(\"`" + f.name().replace("`", "``") + "`\")";
        String fix = switch (f.dataType().typeName()) {
          case "struct" -> "select its fields, or make it text: to_json(" + col + ")";
          case "array", "map", "variant" -> "make it text: to_json(" + col + "), or drop it";
          case "void" -> "give it a type: " + col + ".cast(\"string\")";
          default -> "cast it first: " + col + ".cast(\"string\"), or drop it";
        };
        problems.add("column \"" + f.name() + "\" is " + f.dataType().simpleString() + " (" + fix + ")");
      }
    }
    if (!problems.isEmpty()) {
      problems.set(problems.size() - 1, problems.get(problems.size() - 1)
          + "; Eddy frames hold integers, reals, decimals, booleans, strings, dates and timestamps");
    }
    counts.forEach((name, n) -> {
      if (n > 1) {
        problems.add(n + " columns are named \"" + name + "\" (a frame's columns need distinct names: rename them first)");
      }
    });
    for (String c : categorical) {
      if (!kinds.containsKey(c)) {
        problems.add("categorical column \"" + c + "\" is not in the DataFrame");
      } else if (!kinds.get(c).equals(DataTypes.StringType)) {
        problems.add("categorical column \"" + c + "\" is not a string column (cast it to string first, or leave it out)");
      }
    }
    if (!problems.isEmpty()) {
      throw new EddyException("cannot convert the DataFrame: " + String.join("; ", problems));
    }
  }

  /** The Arrow schema Spark's own Arrow conversions use for {@code schema}. */
  static Schema arrowSchema(StructType schema, String timeZone) {
    return ArrowUtils.toArrowSchema(schema, timeZone, true, false);
  }

  /** An Arrow IPC schema message, base64: how a reader names the types it wants. */
  static String ipcSchema(Schema schema) {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try {
      MessageSerializer.serialize(new WriteChannel(Channels.newChannel(bytes)), schema);
    } catch (IOException e) {
      throw new EddyException("cannot write an Arrow schema: " + e.getMessage(), e);
    }
    return Base64.getEncoder().encodeToString(bytes.toByteArray());
  }
}
