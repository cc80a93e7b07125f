package ai.eddy.spark;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.Serializable;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

/** The REST API of one node (the observer, for a context), with the cloud's access token. */
final class Rest implements Serializable {
  private static final long serialVersionUID = 1L;
  static final ObjectMapper JSON = new ObjectMapper();

  final String url;
  private final String token;
  private transient HttpClient client;

  Rest(String url, String token) {
    this.url = url;
    this.token = token;
  }

  /** {@code /3/Frames/<id>} with the id quoted: an id may hold {@code ? # /} or spaces. */
  static String framePath(String frameId) {
    return "/3/Frames/" + URLEncoder.encode(frameId, StandardCharsets.UTF_8).replace("+", "%20");
  }

  JsonNode get(String path) {
    return request("GET", path, null, Duration.ofSeconds(60));
  }

  JsonNode post(String path, Object body) {
    return request("POST", path, body, Duration.ofSeconds(600));
  }

  JsonNode delete(String path) {
    return request("DELETE", path, null, Duration.ofSeconds(60));
  }

  JsonNode request(String method, String path, Object body, Duration timeout) {
    if (client == null) {
      client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();
    }
    HttpRequest.BodyPublisher publisher;
    try {
      publisher = body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofByteArray(JSON.writeValueAsBytes(body));
    } catch (IOException e) {
      throw new EddyException("cannot write the request to " + path + " as JSON: " + e.getMessage(), e);
    }
    HttpRequest.Builder req = HttpRequest.newBuilder(URI.create(url + path)).timeout(timeout).method(method, publisher);
    if (token != null) {
      req.header("Authorization", "Bearer " + token);
    }
    if (body != null) {
      req.header("Content-Type", "application/json");
    }
    HttpResponse<String> answer;
    try {
      answer = client.send(req.build(), HttpResponse.BodyHandlers.ofString());
    } catch (IOException e) {
      throw new EddyException("cannot reach " + url + " (" + e.getMessage() + "); is the cloud running?", e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new EddyException(method + " " + path + " was interrupted", e);
    }
    JsonNode parsed;
    try {
      parsed = answer.body().isEmpty() ? JSON.nullNode() : JSON.readTree(answer.body());
    } catch (IOException e) {
      parsed = JSON.getNodeFactory().textNode(answer.body());
    }
    if (answer.statusCode() >= 400) {
      String detail = parsed.has("error") ? parsed.get("error").asText() : answer.body();
      throw new EddyException(method + " " + path + ": " + answer.statusCode() + " " + detail);
    }
    return parsed;
  }
}
