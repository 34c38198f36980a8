// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Forwarder
/// @notice The address that calls a job owner's targets. Each owner has one, deployed by the
///         TaskExecutionHub with CREATE2 (salt: the owner) on the owner's first task, so its
///         address is known in advance (`TaskExecutionHub.forwarderOf(owner)`). A target that
///         wants only its owner's automation checks `msg.sender == hub.forwarderOf(owner)`:
///         no other owner's job, and no privileged contract, ever calls from this address.
///         It does one thing, for the hub only: call `target` with `gasLimit` gas.
contract Forwarder {
    /// @notice How much of the target's revert data is passed back.
    uint256 public constant MAX_RETURN_DATA = 256;

    address public immutable hub;

    error NotHub(address caller);

    constructor() {
        hub = msg.sender;
    }

    /// @notice Call `target` with `data` and exactly `gasLimit` gas; revert with (at most
    ///         MAX_RETURN_DATA bytes of) the target's revert data if it reverts.
    function forward(address target, uint256 gasLimit, bytes calldata data) external {
        if (msg.sender != hub) revert NotHub(msg.sender);
        assembly ("memory-safe") {
            let free := mload(0x40)
            calldatacopy(free, data.offset, data.length)
            if iszero(call(gasLimit, target, 0, free, data.length, 0, 0)) {
                let size := returndatasize()
                if gt(size, MAX_RETURN_DATA) { size := MAX_RETURN_DATA }
                returndatacopy(free, 0, size)
                revert(free, size)
            }
        }
    }
}
