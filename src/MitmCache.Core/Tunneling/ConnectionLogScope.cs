using System.Collections;

namespace MitmCache.Tunneling;

/// <summary>
/// The one log scope of a client connection: its ID from the start, and the CONNECT target and the policy's
/// decision once they are known, so every later line of the connection (TLS, requests, fills it starts)
/// carries them. One object pushed once, instead of a dictionary per fact: the logger reads the properties
/// when it writes an event, so facts added later still show. Set them before the connection goes on.
/// </summary>
internal sealed class ConnectionLogScope(string connectionId) : IReadOnlyList<KeyValuePair<string, object?>>
{
    private string? _target;
    private PolicyDecision _decision;

    public int Count => _target is null ? 1 : 3;

    public KeyValuePair<string, object?> this[int index] => index switch
    {
        0 => new("ConnectionId", connectionId),
        1 when _target is not null => new("Target", _target),
        2 when _target is not null => new("Decision", _decision),
        _ => throw new ArgumentOutOfRangeException(nameof(index)),
    };

    /// <summary>Adds the CONNECT target and what the policy decided for it.</summary>
    public void Decided(string target, PolicyDecision decision)
    {
        _decision = decision;
        _target = target;
    }

    public IEnumerator<KeyValuePair<string, object?>> GetEnumerator()
    {
        for (var i = 0; i < Count; i++)
        {
            yield return this[i];
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public override string ToString() => _target is null ? $"ConnectionId:{connectionId}" : $"ConnectionId:{connectionId} Target:{_target} Decision:{_decision}";
}
