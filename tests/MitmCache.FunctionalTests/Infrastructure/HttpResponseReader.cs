using System.Globalization;
using System.Text;

namespace MitmCache.FunctionalTests.Infrastructure;

/// <summary>One HTTP/1.1 response as it came off the wire.</summary>
public sealed record RawResponse(int Status, string Head, byte[] Body)
{
    public string BodyText => Encoding.UTF8.GetString(Body);

    public bool Closes => Head.Contains("\r\nConnection: close", StringComparison.OrdinalIgnoreCase);

    public string? Header(string name)
    {
        foreach (var line in Head.Split("\r\n").Skip(1))
        {
            var colon = line.IndexOf(':');
            if (colon > 0 && line.AsSpan(0, colon).Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                return line[(colon + 1)..].Trim();
            }
        }

        return null;
    }

    public override string ToString() => $"{Head.Split("\r\n")[0]} {(Body.Length > 200 ? BodyText[..200] + "..." : BodyText)}";
}

/// <summary>
/// Reads HTTP/1.1 responses from a raw stream, one after another on a kept-alive connection:
/// Content-Length, chunked or read-to-close bodies, interim 1xx responses skipped. For tests that
/// must see exactly what the proxy sent, where HttpClient would normalize or refuse it.
/// </summary>
public sealed class HttpResponseReader(Stream stream)
{
    private const int MaxHeadBytes = 64 * 1024;

    private readonly byte[] _buffer = new byte[MaxHeadBytes];
    private int _start;
    private int _end;

    /// <summary>The next response, or null when the connection closed before its first byte.</summary>
    /// <param name="headRequest">The request was HEAD: the response has no body whatever it announces.</param>
    /// <exception cref="InvalidDataException">The bytes are not an HTTP/1.x response.</exception>
    public async Task<RawResponse?> ReadAsync(bool headRequest, CancellationToken cancellationToken)
    {
        while (true)
        {
            var head = await ReadHeadAsync(cancellationToken);
            if (head is null)
            {
                return null;
            }

            var statusLine = head.Split("\r\n", 2)[0];
            var parts = statusLine.Split(' ', 3);
            if (parts.Length < 2 || !parts[0].StartsWith("HTTP/1.", StringComparison.Ordinal)
                || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var status))
            {
                throw new InvalidDataException($"not an HTTP response: {statusLine}");
            }

            if (status is >= 100 and < 200 && status != 101)
            {
                continue; // 100 Continue and friends come before the real response
            }

            var response = new RawResponse(status, head, []);
            if (headRequest || status is 204 or 304 or 101 || (status == 200 && statusLine.Contains("Connection Established", StringComparison.Ordinal)))
            {
                return response;
            }

            if (response.Header("Transfer-Encoding")?.Contains("chunked", StringComparison.OrdinalIgnoreCase) == true)
            {
                return response with { Body = await ReadChunkedAsync(cancellationToken) };
            }

            if (response.Header("Content-Length") is { } lengthText)
            {
                if (!long.TryParse(lengthText, NumberStyles.None, CultureInfo.InvariantCulture, out var length) || length > 64 << 20)
                {
                    throw new InvalidDataException($"bad Content-Length: {lengthText}");
                }

                return response with { Body = await ReadExactlyAsync((int)length, cancellationToken) };
            }

            return response with { Body = await ReadToEndAsync(cancellationToken) };
        }
    }

    private async Task<string?> ReadHeadAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var span = _buffer.AsSpan(_start, _end - _start);
            var end = span.IndexOf("\r\n\r\n"u8);
            if (end >= 0)
            {
                var head = Encoding.Latin1.GetString(span[..end]);
                _start += end + 4;
                return head;
            }

            if (_end - _start >= MaxHeadBytes)
            {
                throw new InvalidDataException("response head too large");
            }

            if (await FillAsync(cancellationToken) == 0)
            {
                if (_end == _start)
                {
                    return null;
                }

                throw new InvalidDataException($"connection closed inside a response head: {Encoding.Latin1.GetString(_buffer, _start, Math.Min(200, _end - _start))}");
            }
        }
    }

    private async Task<byte[]> ReadChunkedAsync(CancellationToken cancellationToken)
    {
        using var body = new MemoryStream();
        while (true)
        {
            var sizeLine = await ReadLineAsync(cancellationToken);
            var size = int.Parse(sizeLine.Split(';')[0].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if (size == 0)
            {
                while ((await ReadLineAsync(cancellationToken)).Length > 0)
                {
                    // trailers
                }

                return body.ToArray();
            }

            body.Write(await ReadExactlyAsync(size, cancellationToken));
            await ReadLineAsync(cancellationToken);
        }
    }

    private async Task<string> ReadLineAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var span = _buffer.AsSpan(_start, _end - _start);
            var end = span.IndexOf("\r\n"u8);
            if (end >= 0)
            {
                var line = Encoding.Latin1.GetString(span[..end]);
                _start += end + 2;
                return line;
            }

            if (_end - _start > 1024 || await FillAsync(cancellationToken) == 0)
            {
                throw new InvalidDataException("bad chunk framing");
            }
        }
    }

    private async Task<byte[]> ReadExactlyAsync(int length, CancellationToken cancellationToken)
    {
        var result = new byte[length];
        var copied = 0;
        while (copied < length)
        {
            if (_end == _start && await FillAsync(cancellationToken) == 0)
            {
                throw new InvalidDataException($"body ended after {copied} of {length} bytes");
            }

            var take = Math.Min(length - copied, _end - _start);
            _buffer.AsSpan(_start, take).CopyTo(result.AsSpan(copied));
            _start += take;
            copied += take;
        }

        return result;
    }

    private async Task<byte[]> ReadToEndAsync(CancellationToken cancellationToken)
    {
        using var body = new MemoryStream();
        body.Write(_buffer, _start, _end - _start);
        _start = _end = 0;
        int read;
        while ((read = await stream.ReadAsync(_buffer, cancellationToken)) > 0)
        {
            body.Write(_buffer, 0, read);
        }

        return body.ToArray();
    }

    private async Task<int> FillAsync(CancellationToken cancellationToken)
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }

        if (_end == _buffer.Length)
        {
            throw new InvalidDataException("response head too large");
        }

        var read = await stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken);
        _end += read;
        return read;
    }
}
