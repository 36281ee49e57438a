namespace MitmCache.Caching;

/// <summary>
/// Origins asked in order until one answers: a fault moves on to the next, a body or a refusal is the answer (the
/// last origin's fault too). A later fetch (the rest of a blob the disk cut short) goes first to the origin that
/// answered, so the bytes come from the same place.
/// </summary>
internal sealed class OriginChain(IReadOnlyList<IBlobOrigin> origins) : IBlobOrigin
{
    private IBlobOrigin? _answered;

    public async Task<OriginAnswer> FetchAsync(long offset, CancellationToken cancellationToken)
    {
        IEnumerable<IBlobOrigin> order = _answered is { } first ? [first, .. origins.Where(o => o != first)] : origins;
        OriginAnswer? answer = null;
        foreach (var origin in order)
        {
            answer?.Dispose();
            answer = await origin.FetchAsync(offset, cancellationToken);
            if (answer is not OriginFault)
            {
                _answered = origin;
                return answer;
            }
        }

        return answer ?? new OriginFault("", "no origin");
    }
}
