package ai.eddy.spark;

import org.apache.spark.sql.connector.write.WriterCommitMessage;

/** A task's staged chunk: the worker's reply (JSON), for the driver to commit. */
final class StagedChunk implements WriterCommitMessage {
  private static final long serialVersionUID = 1L;
  final String reply;
  /** Whether the chunk went to a worker on the task's own host. */
  final boolean local;

  StagedChunk(String reply, boolean local) {
    this.reply = reply;
    this.local = local;
  }
}
