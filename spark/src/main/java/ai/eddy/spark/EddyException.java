package ai.eddy.spark;

/** What went wrong, said so that a user knows what to do; the connector's one error type. */
public class EddyException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public EddyException(String message) {
    super(message);
  }

  public EddyException(String message, Throwable cause) {
    super(message, cause);
  }
}
