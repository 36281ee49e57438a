using System.Net;

namespace MitmCache.Registry;

/// <summary>
/// A probe's answer as every client waiting on it gets it: the outcome, and for an answer that is not a yes,
/// upstream's response head (a HEAD has no body), from which each client gets a response of its own to relay.
/// </summary>
internal sealed record ProbeAnswer(ProbeOutcome Outcome, string Reason = "", ProbeAnswer.ResponseHead? Head = null)
{
    public sealed record ResponseHead(HttpStatusCode Status, KeyValuePair<string, string[]>[] Headers, KeyValuePair<string, string[]>[] ContentHeaders);

    public static ResponseHead HeadOf(HttpResponseMessage response) => new(response.StatusCode,
        [.. response.Headers.Select(h => KeyValuePair.Create(h.Key, h.Value.ToArray()))],
        [.. response.Content.Headers.Select(h => KeyValuePair.Create(h.Key, h.Value.ToArray()))]);

    /// <summary>A result of the caller's own, with a response of its own (an empty body under upstream's headers).</summary>
    public ProbeResult ToResult()
    {
        if (Head is null)
        {
            return new(Outcome, Reason: Reason);
        }

        var response = new HttpResponseMessage(Head.Status) { Content = new ByteArrayContent([]) };
        foreach (var (name, values) in Head.Headers)
        {
            response.Headers.TryAddWithoutValidation(name, values);
        }

        response.Content.Headers.Clear();
        foreach (var (name, values) in Head.ContentHeaders)
        {
            response.Content.Headers.TryAddWithoutValidation(name, values);
        }

        return new(Outcome, response, Reason);
    }
}
