using System.Buffers;
using System.Text;
using MitmCache.Tunneling;

namespace MitmCache.Core.Tests.Tunneling;

public class ConnectRequestParserTests
{
    private static ConnectParseResult Parse(string text) => Parse(Encoding.UTF8.GetBytes(text));

    private static ConnectParseResult Parse(byte[] bytes) => ConnectRequestParser.Parse(new ReadOnlySequence<byte>(bytes));

    [Fact]
    public void Parse_MinimalHead_ReturnsHostPortAndConsumesWholeHead()
    {
        const string head = "CONNECT registry-1.docker.io:443 HTTP/1.1\r\n\r\n";

        var result = Parse(head);

        Assert.Equal(ConnectParseStatus.Parsed, result.Status);
        Assert.NotNull(result.Request);
        Assert.Equal("registry-1.docker.io", result.Request.Host);
        Assert.Equal(443, result.Request.Port);
        Assert.Null(result.Request.ProxyAuthorization);
        Assert.Equal(head.Length, result.Consumed);
        Assert.Null(result.Error);
    }

    [Fact]
    public void Parse_HeadWithHeaders_CapturesProxyAuthorizationTrimmed()
    {
        const string head = "CONNECT ghcr.io:443 HTTP/1.1\r\n" +
            "Host: ghcr.io:443\r\n" +
            "User-Agent: containerd/2.0\r\n" +
            "proxy-authorization:   Basic dXNlcjpwYXNz  \r\n" +
            "Proxy-Connection: keep-alive\r\n\r\n";

        var result = Parse(head);

        Assert.Equal(ConnectParseStatus.Parsed, result.Status);
        Assert.Equal("Basic dXNlcjpwYXNz", result.Request!.ProxyAuthorization);
        Assert.Equal(head.Length, result.Consumed);
    }

    [Fact]
    public void Parse_BareLfLineEndings_Parsed()
    {
        const string head = "CONNECT quay.io:443 HTTP/1.1\nHost: quay.io:443\nProxy-Authorization: Basic eDp5\n\n";

        var result = Parse(head);

        Assert.Equal(ConnectParseStatus.Parsed, result.Status);
        Assert.Equal("quay.io", result.Request!.Host);
        Assert.Equal("Basic eDp5", result.Request.ProxyAuthorization);
        Assert.Equal(head.Length, result.Consumed);
    }

    [Fact]
    public void Parse_Http10Head_Parsed()
    {
        var result = Parse("CONNECT gcr.io:443 HTTP/1.0\r\n\r\n");

        Assert.Equal(ConnectParseStatus.Parsed, result.Status);
    }

    [Fact]
    public void Parse_BytesAfterHead_ConsumedStopsAtBlankLine()
    {
        var head = Encoding.ASCII.GetBytes("CONNECT registry.test:443 HTTP/1.1\r\nHost: registry.test:443\r\n\r\n");
        byte[] clientHello = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];

        var result = Parse([.. head, .. clientHello]);

        Assert.Equal(ConnectParseStatus.Parsed, result.Status);
        Assert.Equal(head.Length, result.Consumed);
    }

    [Fact]
    public void Parse_MixedCaseHost_LowerCasesHost()
    {
        var result = Parse("CONNECT Registry.EXAMPLE.com:443 HTTP/1.1\r\n\r\n");

        Assert.Equal("registry.example.com", result.Request!.Host);
    }

    [Theory]
    [InlineData("[::1]:443", "::1", 443, "[::1]:443")]
    [InlineData("[2001:DB8::1]:5000", "2001:db8::1", 5000, "[2001:db8::1]:5000")]
    [InlineData("127.0.0.1:8443", "127.0.0.1", 8443, "127.0.0.1:8443")]
    [InlineData("registry.test:1", "registry.test", 1, "registry.test:1")]
    [InlineData("registry.test:65535", "registry.test", 65535, "registry.test:65535")]
    [InlineData("xn--bcher-kva.example:443", "xn--bcher-kva.example", 443, "xn--bcher-kva.example:443")]
    public void Parse_ValidAuthority_ReturnsNormalizedHostAndAuthority(string authority, string host, int port, string wire)
    {
        var result = Parse($"CONNECT {authority} HTTP/1.1\r\n\r\n");

        Assert.Equal(ConnectParseStatus.Parsed, result.Status);
        Assert.Equal(host, result.Request!.Host);
        Assert.Equal(port, result.Request.Port);
        Assert.Equal(wire, result.Request.Authority);
    }

    [Theory]
    [InlineData("registry.test")] // missing port
    [InlineData("registry.test:")] // empty port
    [InlineData("registry.test:https")] // non-numeric port
    [InlineData("registry.test:+443")]
    [InlineData("registry.test:-1")]
    [InlineData("registry.test:0")]
    [InlineData("registry.test:65536")]
    [InlineData("registry.test:000443")]
    [InlineData("user@registry.test:443")] // userinfo
    [InlineData("user:pass@registry.test:443")]
    [InlineData("registry.test:443/v2/")] // a path
    [InlineData("http://registry.test:443")]
    [InlineData("::1:443")] // IPv6 without brackets
    [InlineData("[::1:443")]
    [InlineData("[not-an-address]:443")]
    [InlineData("[127.0.0.1]:443")] // IPv4 in brackets
    [InlineData(":443")] // no host
    [InlineData("-registry.test:443")]
    [InlineData("registry..test:443")]
    [InlineData("registry.test.:443")]
    [InlineData("*.registry.test:443")]
    [InlineData("reg%69stry.test:443")]
    public void Parse_BadAuthority_ReturnsMalformed(string authority)
    {
        var result = Parse($"CONNECT {authority} HTTP/1.1\r\n\r\n");

        Assert.Equal(ConnectParseStatus.Malformed, result.Status);
        Assert.Null(result.Request);
        Assert.False(string.IsNullOrEmpty(result.Error));
    }

    [Theory]
    [InlineData("CONNECT registry.test:443\r\n\r\n")] // no version
    [InlineData("CONNECT registry.test:443 HTTP/2.0\r\n\r\n")]
    [InlineData("CONNECT registry.test:443 HTTP/1.1 extra\r\n\r\n")]
    [InlineData("CONNECT  registry.test:443 HTTP/1.1\r\n\r\n")] // two spaces
    [InlineData("CONNECT registry.test:443 HTTP/1.1\r\nNoColonHere\r\n\r\n")]
    [InlineData("CONNECT registry.test:443 HTTP/1.1\r\nBad Name: value\r\n\r\n")]
    [InlineData("CONNECT registry.test:443 HTTP/1.1\r\n: no name\r\n\r\n")]
    [InlineData("CONNECT registry.test:443 HTTP/1.1\r\n folded: header\r\n\r\n")]
    public void Parse_BadRequestLineOrHeader_ReturnsMalformed(string head)
    {
        Assert.Equal(ConnectParseStatus.Malformed, Parse(head).Status);
    }

    [Theory]
    [InlineData("CONNECT regi\0stry.test:443 HTTP/1.1\r\n\r\n")]
    [InlineData("CONNECT registry.test:443 HTTP/1.1\r\nX-Nul: a\0b\r\n\r\n")]
    [InlineData("CONNECT bücher.example:443 HTTP/1.1\r\n\r\n")] // IDN must arrive as punycode
    [InlineData("CONNECT registry.test:443 HTTP/1.1\r\nX-Name: Jürgen\r\n\r\n")]
    public void Parse_NulOrNonAsciiBytes_ReturnsMalformed(string head)
    {
        var result = Parse(head);

        Assert.Equal(ConnectParseStatus.Malformed, result.Status);
        Assert.Contains("NUL or non-ASCII", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_HostOf64KiBWithTerminator_ReturnsTooLarge()
    {
        var result = Parse($"CONNECT {new string('a', 64 * 1024)}:443 HTTP/1.1\r\n\r\n");

        Assert.Equal(ConnectParseStatus.TooLarge, result.Status);
    }

    [Fact]
    public void Parse_HostOf64KiBWithoutTerminator_ReturnsTooLarge()
    {
        var result = Parse($"CONNECT {new string('a', 64 * 1024)}");

        Assert.Equal(ConnectParseStatus.TooLarge, result.Status);
    }

    [Fact]
    public void Parse_HostLongerThan253_ReturnsMalformed()
    {
        var host = string.Join('.', Enumerable.Repeat(new string('a', 50), 5)); // 254 characters

        var result = Parse($"CONNECT {host}:443 HTTP/1.1\r\n\r\n");

        Assert.Equal(ConnectParseStatus.Malformed, result.Status);
    }

    [Fact]
    public void Parse_HeadOfExactlyMaxBytes_Parsed()
    {
        var result = Parse(HeadOfLength(ConnectRequestParser.MaxHeadBytes) + "\r\n\r\n");

        Assert.Equal(ConnectParseStatus.Parsed, result.Status);
    }

    [Fact]
    public void Parse_HeadOneByteOverMax_ReturnsTooLarge()
    {
        var result = Parse(HeadOfLength(ConnectRequestParser.MaxHeadBytes + 1) + "\r\n\r\n");

        Assert.Equal(ConnectParseStatus.TooLarge, result.Status);
    }

    [Fact]
    public void Parse_OversizedHeadersWithoutBlankLine_ReturnsTooLarge()
    {
        var builder = new StringBuilder("CONNECT registry.test:443 HTTP/1.1\r\n");
        while (builder.Length <= ConnectRequestParser.MaxHeadBytes)
        {
            builder.Append("X-Padding: ").Append('p', 100).Append("\r\n");
        }

        Assert.Equal(ConnectParseStatus.TooLarge, Parse(builder.ToString()).Status);
    }

    [Theory]
    [InlineData("")]
    [InlineData("C")]
    [InlineData("CONN")]
    [InlineData("CONNECT")]
    [InlineData("CONNECT ")]
    [InlineData("CONNECT registry.test:443")]
    [InlineData("CONNECT registry.test:443 HTTP/1.1\r\n")]
    [InlineData("CONNECT registry.test:443 HTTP/1.1\r\nHost: registry.test\r\n")]
    [InlineData("CONNECT registry.test:443 HTTP/1.1\r\n\r")]
    [InlineData("CONNECT registry.test:443 HTTP/1.1\n")]
    public void Parse_IncompleteHead_ReturnsIncomplete(string text)
    {
        var result = Parse(text);

        Assert.Equal(ConnectParseStatus.Incomplete, result.Status);
        Assert.Equal(0, result.Consumed);
    }

    [Theory]
    [InlineData("GET / HTTP/1.1\r\nHost: proxy\r\n\r\n")]
    [InlineData("GET http://registry.test/v2/ HTTP/1.1\r\n\r\n")]
    [InlineData("connect registry.test:443 HTTP/1.1\r\n\r\n")] // methods are case-sensitive
    [InlineData("CONNECTX registry.test:443 HTTP/1.1\r\n\r\n")]
    [InlineData("G")]
    [InlineData("CONNECTED")]
    public void Parse_NotConnectText_ReturnsNotConnect(string text)
    {
        Assert.Equal(ConnectParseStatus.NotConnect, Parse(text).Status);
    }

    [Fact]
    public void Parse_TlsClientHelloFirstByte_ReturnsNotConnect()
    {
        Assert.Equal(ConnectParseStatus.NotConnect, Parse([0x16]).Status);
        Assert.Equal(ConnectParseStatus.NotConnect, Parse([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).Status);
    }

    [Fact]
    public void Parse_MultiSegmentSequence_ParsedWithSameConsumed()
    {
        var bytes = Encoding.ASCII.GetBytes("CONNECT registry.test:5000 HTTP/1.1\r\nProxy-Authorization: Basic YTpi\r\n\r\n");
        byte[] after = [0x16, 0x03, 0x01];
        var sequence = TestSequence.FromSegments(
            bytes[..3],            // "CON": split inside the method
            bytes[3..20],
            bytes[20..^3],         // split inside the final CRLF CRLF
            bytes[^3..^1],
            [.. bytes[^1..], .. after]);

        var result = ConnectRequestParser.Parse(sequence);

        Assert.Equal(ConnectParseStatus.Parsed, result.Status);
        Assert.Equal("registry.test", result.Request!.Host);
        Assert.Equal(5000, result.Request.Port);
        Assert.Equal("Basic YTpi", result.Request.ProxyAuthorization);
        Assert.Equal(bytes.Length, result.Consumed);
        Assert.Equal(after, sequence.Slice(result.Consumed).ToArray());
    }

    [Fact]
    public void Parse_MultiSegmentPrefixOnly_ReturnsIncomplete()
    {
        var sequence = TestSequence.FromSegments("CO"u8.ToArray(), "NN"u8.ToArray());

        Assert.Equal(ConnectParseStatus.Incomplete, ConnectRequestParser.Parse(sequence).Status);
    }

    [Fact]
    public void Parse_MultiSegmentNotConnect_ReturnsNotConnect()
    {
        var sequence = TestSequence.FromSegments("CO"u8.ToArray(), "PY / HTTP/1.1\r\n\r\n"u8.ToArray());

        Assert.Equal(ConnectParseStatus.NotConnect, ConnectRequestParser.Parse(sequence).Status);
    }

    /// <summary>A valid CONNECT head (without the final blank line) of exactly <paramref name="length"/> bytes.</summary>
    private static string HeadOfLength(int length)
    {
        const string requestLine = "CONNECT registry.test:443 HTTP/1.1\r\n";
        const string name = "X-Padding: ";
        var padding = length - requestLine.Length - name.Length;
        var head = requestLine + name + new string('p', padding);
        Assert.Equal(length, head.Length);
        return head;
    }

    [Theory]
    [InlineData("", 0)]
    [InlineData("GET / HTTP/1.1\r\n", 0)]
    [InlineData("\r\n", 2)]
    [InlineData("\r\n\r\n\n\r", 6)]
    [InlineData("\r\nCONNECT a:443 HTTP/1.1\r\n\r\n", 2)]
    [InlineData("\n\nG", 2)]
    [InlineData(" \r\n", 0)]
    public void CountLeadingLineBreaks_OneSegment_CountsOnlyLeadingCrAndLf(string text, long expected)
    {
        Assert.Equal(expected, ConnectRequestParser.CountLeadingLineBreaks(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(text))));
    }

    [Fact]
    public void CountLeadingLineBreaks_AcrossSegments_Counted()
    {
        var buffer = TestSequence.FromSegments("\r\n"u8.ToArray(), "\r"u8.ToArray(), "\nCONNECT"u8.ToArray());

        Assert.Equal(4, ConnectRequestParser.CountLeadingLineBreaks(buffer));
        Assert.Equal(3, ConnectRequestParser.CountLeadingLineBreaks(TestSequence.FromSegments("\r\n"u8.ToArray(), "\n"u8.ToArray())));
    }
}
