using System.Text;

namespace MitmCache.FunctionalTests.Infrastructure;

/// <summary>
/// Mutates valid HTTP request heads into almost-valid ones: flipped bits, hostile bytes and tokens
/// (encoded dots and slashes, overlong UTF-8, huge numbers), extra header lines, deletions,
/// duplications, truncation, case and line-ending changes. Input <c>n</c> of a seed is always the
/// same bytes, so a failure is replayed from (seed, n) alone.
/// </summary>
public static class RequestMutator
{
    private static readonly byte[] s_bytes =
        [0x00, (byte)'\r', (byte)'\n', (byte)' ', (byte)'\t', (byte)':', (byte)'/', (byte)'%', (byte)'.', (byte)'\\', (byte)'?', (byte)'#',
         (byte)'@', (byte)'[', (byte)']', (byte)'"', (byte)',', (byte)';', (byte)'=', 0x7f, 0x80, 0xc0, 0xc3, 0xff];

    private static readonly string[] s_tokens =
    [
        "%2e%2e", "%2E%2E", "..", "../", "/..", "%2f", "%2F", "%5c", "%c0%ae", "%c0%af", "%e0%80%ae", "%00", "%", "%zz", "//", "/./",
        "\\", ":", "@", "sha256:", "sha512:", "SHA256:", "md5:", "sha256:" + new string('A', 64), "sha256:" + new string('0', 63),
        "\u00fc", "\u0130", "\ufeff", "\r\n", "\n", "\r", " ", "\t", "*", "?", "#", "[::1]", "[", "]", "0", "-1", "+1", "65535", "65536",
        "4294967296", "99999999999999999999", "/v2/", "/v2", "manifests", "blobs", "uploads", "tags/list", "latest", "HTTP/1.0",
        "HTTP/2.0", "HTTP/1.1", "CONNECT ", "GET ", "HEAD ", "POST ", "xn--", "localhost", "127.0.0.1", "169.254.169.254", "0.0.0.0",
        "faulty.test", "http://", "https://", ":443", ":0",
    ];

    private static readonly string[] s_headerLines =
    [
        "Content-Length: 0", "Content-Length: 3", "Content-Length: -1", "Content-Length: 1, 2", "Content-Length: 99999999999999999999",
        "Transfer-Encoding: chunked", "Transfer-Encoding: gzip, chunked", "Transfer-Encoding: identity", "Expect: 100-continue",
        "Expect: nonsense", "Range: bytes=0-0", "Range: bytes=5-1", "Range: bytes=-0", "Range: bytes=99999999999999999999-",
        "Range: bytes=0-1,2-3", "Range: items=0-1", "Range: bytes=", "Accept: */*", "Accept: ;;;,,,", "Accept: a/b;q=x",
        "Accept: application/vnd.oci.image.manifest.v1+json;q=0", "Accept-Encoding: gzip, br", "Authorization: Bearer",
        "Authorization: Basic !!!", "Authorization: Basic dXNlcjpwYXNz", "Authorization: Bearer a.b.c", "Authorization: Negotiate x",
        "Proxy-Authorization: Basic", "Host: evil.test", "Host:", "Host: faulty.test:1", "Connection: close", "Connection: Upgrade, Host",
        "Connection: keep-alive, Authorization", "Upgrade: h2c", "Upgrade: websocket", "TE: trailers", "Content-Type: \u0001",
        "Content-Type: ;;", "If-None-Match: *", "If-Modified-Since: yesterday", "Cookie: a=b", "Docker-Content-Digest: sha256:zz",
        "X-Forwarded-For: 1.2.3.4", ":authority: x", " folded", "\tfolded", "NoColon", ": empty-name", "X-Long: " + new string('a', 9000),
    ];

    /// <summary>Input <paramref name="index"/> for <paramref name="seed"/>: one to four mutations of one of <paramref name="seeds"/>.</summary>
    public static byte[] Create(IReadOnlyList<string> seeds, int seed, int index)
    {
        var random = new Random(unchecked((seed * 1_000_003) + index)); // HashCode.Combine is salted per process: not replayable
        var template = Encoding.Latin1.GetBytes(seeds[random.Next(seeds.Count)]);

        // Most inputs keep their head terminator so the proxy answers at once; some may end anywhere.
        var keepTerminator = random.Next(10) != 0;
        var headEnd = template.AsSpan().IndexOf("\r\n\r\n"u8);
        if (!keepTerminator || headEnd < 0)
        {
            return Mutate(random, [.. template], truncateAllowed: true).ToArray();
        }

        var head = Mutate(random, [.. template[..headEnd]], truncateAllowed: false);
        return [.. head, .. template[headEnd..]];
    }

    private static List<byte> Mutate(Random random, List<byte> bytes, bool truncateAllowed)
    {
        var count = 1 + random.Next(4);
        for (var i = 0; i < count; i++)
        {
            var at = bytes.Count == 0 ? 0 : random.Next(bytes.Count);
            switch (random.Next(truncateAllowed ? 12 : 11))
            {
                case 0 when bytes.Count > 0:
                    bytes[at] ^= (byte)(1 << random.Next(8));
                    break;
                case 1 when bytes.Count > 0:
                    bytes[at] = s_bytes[random.Next(s_bytes.Length)];
                    break;
                case 2:
                case 3:
                    bytes.InsertRange(at, Encoding.Latin1.GetBytes(s_tokens[random.Next(s_tokens.Length)]));
                    break;
                case 4:
                    InsertHeaderLine(random, bytes);
                    break;
                case 5 when bytes.Count > 0:
                    bytes.RemoveRange(at, Math.Min(1 + random.Next(16), bytes.Count - at));
                    break;
                case 6 when bytes.Count > 0:
                    var length = Math.Min(1 + random.Next(32), bytes.Count - at);
                    bytes.InsertRange(at, bytes.GetRange(at, length));
                    break;
                case 7 when bytes.Count > 0:
                    ReplaceWord(random, bytes, at);
                    break;
                case 8 when bytes.Count > 0:
                    for (var j = at; j < Math.Min(bytes.Count, at + 1 + random.Next(16)); j++)
                    {
                        bytes[j] = (byte)(char.IsAsciiLetterLower((char)bytes[j]) ? char.ToUpperInvariant((char)bytes[j]) : char.ToLowerInvariant((char)bytes[j]));
                    }

                    break;
                case 9:
                    bytes.InsertRange(at, Enumerable.Repeat((byte)"a/.%0"[random.Next(5)], 1 + random.Next(random.Next(2) == 0 ? 300 : 5000)));
                    break;
                case 10:
                    var text = Encoding.Latin1.GetString([.. bytes]);
                    text = random.Next(2) == 0 ? text.Replace("\r\n", "\n", StringComparison.Ordinal) : text.Replace(" ", "  ", StringComparison.Ordinal);
                    bytes = [.. Encoding.Latin1.GetBytes(text)];
                    break;
                case 11 when bytes.Count > 0:
                    bytes.RemoveRange(at, bytes.Count - at);
                    break;
            }
        }

        return bytes;
    }

    private static void InsertHeaderLine(Random random, List<byte> bytes)
    {
        var line = Encoding.Latin1.GetBytes(s_headerLines[random.Next(s_headerLines.Length)] + "\r\n");
        var firstLineEnd = bytes.IndexOf((byte)'\n');
        bytes.InsertRange(firstLineEnd < 0 ? bytes.Count : firstLineEnd + 1, line);
    }

    /// <summary>Replaces the run of name-ish characters around <paramref name="at"/> with a token.</summary>
    private static void ReplaceWord(Random random, List<byte> bytes, int at)
    {
        static bool IsWord(byte b) => char.IsAsciiLetterOrDigit((char)b) || b is (byte)'-' or (byte)'_' or (byte)'.';
        var start = at;
        while (start > 0 && IsWord(bytes[start - 1]))
        {
            start--;
        }

        var end = at;
        while (end < bytes.Count && IsWord(bytes[end]))
        {
            end++;
        }

        bytes.RemoveRange(start, end - start);
        bytes.InsertRange(start, Encoding.Latin1.GetBytes(s_tokens[random.Next(s_tokens.Length)]));
    }

    /// <summary>The bytes as a C#-ish literal, for failure messages.</summary>
    public static string Describe(byte[] input, int max = 400)
    {
        var builder = new StringBuilder();
        foreach (var b in input.Take(max))
        {
            builder.Append(b switch
            {
                (byte)'\r' => "\\r",
                (byte)'\n' => "\\n",
                (byte)'\\' => "\\\\",
                >= 0x20 and < 0x7f => ((char)b).ToString(),
                _ => $"\\x{b:x2}",
            });
        }

        return input.Length > max ? builder.Append($"... ({input.Length} bytes)").ToString() : builder.ToString();
    }
}
