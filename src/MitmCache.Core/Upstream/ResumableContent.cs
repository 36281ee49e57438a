using System.Net;

namespace MitmCache.Upstream;

/// <summary>A parent's answer body in place of the one the HTTP client made: the same headers, read through a <see cref="ResumingStream"/>.</summary>
internal sealed class ResumableContent : HttpContent
{
    private readonly ResumingStream _body;

    public ResumableContent(HttpContent original, ResumingStream body)
    {
        _body = body;
        foreach (var (name, values) in original.Headers)
        {
            Headers.TryAddWithoutValidation(name, values);
        }
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => _body.CopyToAsync(stream);

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken) =>
        _body.CopyToAsync(stream, cancellationToken);

    protected override Task<Stream> CreateContentReadStreamAsync() => Task.FromResult<Stream>(_body);

    protected override Task<Stream> CreateContentReadStreamAsync(CancellationToken cancellationToken) => Task.FromResult<Stream>(_body);

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false; // Content-Length, when the parent sent one, is among the headers copied
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _body.Dispose();
        }

        base.Dispose(disposing);
    }
}
